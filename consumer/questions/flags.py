"""What workers know of the users' answers: every later alert about a disowned login is flagged.

``AnswerBook.flags(now)`` reads the questions answered within ``FLAGGED_FOR`` (at most
``MOST`` of them, newest first) at ``[worker] silence_interval``, with the silences, and a
failed read raises like theirs (``core/periodic.py``). ``flag_of`` is pure: an event whose
own question was answered gets that answer (so the admins' alert, if it is still to be
sent, shows a "yes" beside the login), and any event of the same host (case-insensitive),
user and source as a login the user disowned reads "no".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from consumer.core.periodic import Periodic
from consumer.questions.decide import NO
from consumer.questions.table import QuestionTable
from consumer.store.text import sql_text
from schemas.event import LoginEvent

FLAGGED_FOR: Final = timedelta(days=7)
MOST: Final = 10_000


@dataclass(frozen=True)
class Flags:
    """Answers by event id, and the subjects (host, user, source) of disowned logins."""

    answers: dict[str, tuple[str, str]] = field(default_factory=dict)
    disowned: frozenset[tuple[str, str, str]] = frozenset()


def subject(host: str, user: str, address: str) -> tuple[str, str, str]:
    """What a login is "about" for flagging: host (folded), user, source, as stored."""
    return sql_text(host).lower(), sql_text(user), sql_text(address)


def flag_of(flags: Flags, event: LoginEvent) -> tuple[str, str]:
    """(answer, flag) to show beside ``event``: its own question's, or "no" when it is
    about a disowned login; ("", "") otherwise."""
    own = flags.answers.get(event.id_hex)
    if own is not None:
        return own
    if subject(event.host, event.user, event.client_ip) in flags.disowned:
        return NO, ""
    return "", ""


class AnswerBook:
    """The answers one worker thread flags alerts with, read at an interval."""

    def __init__(
        self,
        table: QuestionTable,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self._periodic = Periodic(self._read, interval, monotonic)

    def flags(self, now: datetime) -> Flags:
        """Raises: StoreError: the read failed."""
        return self._periodic.get(now)

    def _read(self, now: datetime) -> Flags:
        answered = self.table.answered_since(now - FLAGGED_FOR, MOST)
        return Flags(
            answers={q.id: (q.verdict, q.flag) for q in answered},
            disowned=frozenset(
                (q.host.lower(), q.user, q.client_ip) for q in answered if q.verdict == NO
            ),
        )
