"""Deliver stage (stub)."""

from __future__ import annotations

from email.message import EmailMessage

from schemas.config import SmtpConfig


class SmtpSender:
    def __init__(self, config: SmtpConfig, *, attempts: int = 3, wait: float = 0.5) -> None:
        self.config = config

    def send(self, msg: EmailMessage) -> None:
        """Send one mail over the reused connection.

        Raises:
            TransientDelivery: still failing after the short retries.
            PermanentDelivery: 5xx, refused recipients.
        """
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
