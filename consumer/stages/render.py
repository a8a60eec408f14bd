"""Render stage (stub)."""

from __future__ import annotations

from email.message import EmailMessage

from consumer.model import Decision, Enriched
from schemas.config import Config


class Renderer:
    def __init__(self, config: Config) -> None:
        self.config = config

    def render(self, enriched: Enriched, decision: Decision) -> EmailMessage:
        """The mail for a MAILING decision (alert or burst).

        Raises:
            PermanentDelivery: a template is broken.
        """
        raise NotImplementedError
