"""What a "No" sets off: the ``login-disowned`` system alert to its recipients, at once.

``Escalator.escalate(question, now)`` decides who hears it (``decide.escalation``: the
routes with ``escalate = true``, ``[notify_user] escalate_to``, else every immediate route
of the login), and sends each recipient's notice once through the channel layer
(``send_once`` on the store's sent log, key ``system:login-disowned:QUESTION:RECIPIENT``,
the key system alerts use), so a retry sends nothing twice. No silence and no flood budget
applies: a "No" always escalates, and each question can escalate only once. When every
recipient got it the question is marked escalated; until then ``loginwatch web`` tries the
rest again (``pending``), so an SMTP outage delays an escalation, it never drops it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from consumer.channels.base import Channel, send_once
from consumer.core.display import quoted
from consumer.questions.decide import DISOWNED, escalation
from consumer.questions.message import Messages
from consumer.questions.table import Question, QuestionTable
from consumer.store import Store
from schemas.config import Config
from schemas.errors import PermanentSendError, StoreError, TransientSendError

log = logging.getLogger("loginwatch.web")

PENDING_BATCH: Final = 50


@dataclass
class Outcome:
    """Who got the escalation, and what failed (transient: tried again later)."""

    sent: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    transient: list[str] = field(default_factory=list)
    permanent: list[str] = field(default_factory=list)


def key_of(question_id: str, recipient: str) -> str:
    """The sent-log key of one recipient's escalation (a system alert's key shape)."""
    return f"system:{DISOWNED}:{question_id}:{recipient.lower()}"


class Escalator:
    """Sends the escalations of "No" answers through one channel (``Outlets``)."""

    def __init__(self, config: Config, store: Store, channel: Channel, messages: Messages) -> None:
        self.config = config
        self.store = store
        self.table = QuestionTable(store.db)
        self.channel = channel
        self.messages = messages

    def escalate(self, question: Question, now: datetime) -> Outcome:
        """Send ``question``'s escalation to each of its recipients that has not got it.

        Raises:
            StoreError: the store failed (what went out is recorded; try again).
        """
        outcome = Outcome()
        answers = self.table.answers(question.id)
        decisions = escalation(self.config.route, self.config.notify_user, question.as_event())
        for decision in decisions:
            recipient = decision.recipient or ""
            key = key_of(question.id, recipient)
            try:
                sent = send_once(self.store, self.channel, key,
                                 lambda d=decision, k=key: self.messages.escalation(  # type: ignore[misc]
                                     question, d, answers, k), now)  # fmt: skip
            except TransientSendError as exc:
                outcome.transient.append(f"{recipient}: {exc}")
                continue
            except PermanentSendError as exc:
                outcome.permanent.append(f"{recipient}: {exc}")
                continue
            (outcome.sent if sent else outcome.before).append(recipient)
        if not outcome.transient:
            self.table.escalated(question.id, now)
        log.warning("%s %s %s on %s: escalated to %s%s", question.id, DISOWNED,
                    quoted(question.user), quoted(question.host),
                    ", ".join(outcome.sent + outcome.before) or "nobody",
                    "; failed: " + "; ".join(outcome.transient + outcome.permanent)
                    if outcome.transient or outcome.permanent else "")  # fmt: skip
        return outcome

    def pending(self, now: datetime) -> int:
        """Escalate again what a transient failure left; how many questions were tried."""
        try:
            waiting = self.table.unescalated(PENDING_BATCH)
        except StoreError as exc:
            log.warning("reading pending escalations: %s", exc)
            return 0
        for question in waiting:
            try:
                self.escalate(question, now)
            except StoreError as exc:
                log.warning("%s: escalation not recorded yet: %s", question.id, exc)
        return len(waiting)
