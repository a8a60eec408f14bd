"""Fakes the unit tests share (no service needed)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any

from consumer.core.notice import Notice
from consumer.questions.flags import Flags
from tests.support.smtp_server import text_part


class Outbox:
    """A channel for every target that keeps what it is given: the mails in ``sent``, every
    notice in ``notices``; ``fail`` holds errors to raise first, one per delivery."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.notices: list[Notice] = []
        self.fail: list[Exception] = []

    def deliver(self, notice: Notice) -> None:
        if notice.mail is None:
            if self.fail:
                raise self.fail.pop(0)
            self.notices.append(notice)
            return
        self.send(notice.mail)
        self.notices.append(notice)

    def send(self, msg: EmailMessage) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(msg)

    def text(self, to: str) -> str:
        """The text part of the mail sent to ``to``."""
        return next(text_part(m) for m in self.sent if m["To"] == to)

    def close(self) -> None:
        pass


class NoSilences:
    """A ``SilenceBook`` without a store: only the silences it is given; ``fail`` makes
    its next read raise (a store that cannot be read)."""

    def __init__(self, rules: tuple[Any, ...] = ()) -> None:
        self.rules_given = rules
        self.fail: Exception | None = None

    def rules(self, now: datetime) -> tuple[Any, ...]:
        if self.fail is not None:
            raise self.fail
        return self.rules_given


class NoAnswers:
    """An ``AnswerBook`` without a store: nobody answered anything."""

    def flags(self, now: datetime) -> Flags:
        return Flags()
