"""Fakes the unit tests share (no service needed)."""

from __future__ import annotations

from email.message import EmailMessage

from tests.support.smtp_server import text_part


class Outbox:
    """A mail sender that keeps what it is given in ``sent``; ``fail`` holds errors to raise
    first, one per ``send``."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.fail: list[Exception] = []

    def send(self, msg: EmailMessage) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(msg)

    def text(self, to: str) -> str:
        """The text part of the mail sent to ``to``."""
        return next(text_part(m) for m in self.sent if m["To"] == to)

    def close(self) -> None:
        pass
