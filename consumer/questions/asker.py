"""The worker's step that asks "was this you?" after an event is decided.

For a successful login whose deciding route (for some recipient) has ``ask = true``
(``decide.ask``): find the user's target (``target.target_of``), read its question budget
(the flood budget of kind ``question``, per target, across hosts), store the question
(keyed by the event, so a redelivery asks nothing twice), sign its two links, and send it
once through the channel layer (``channels.base.send_once``: the sent log's key
``question:EVENT``), counting it in the target's budget in the same commit.

A question never holds up the admins' alert: the pipeline sends the alerts first. A
question that fails for good (a refused address) is logged, not dead-lettered: the event
itself was handled; one that fails for now parks the event like a mail (the sent log then
skips what went out).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from consumer.channels.base import Channel, send_once
from consumer.core.decisions import Budget
from consumer.core.display import quoted
from consumer.core.enriched import Enriched
from consumer.core.links import ANSWER_NO, ANSWER_YES, Signer, link
from consumer.core.routing import first_routes
from consumer.questions.decide import Ask, ask
from consumer.questions.message import Messages
from consumer.questions.table import Question, QuestionTable
from consumer.questions.target import target_of
from consumer.store import Store, StoreBatch
from schemas.actions import span_seconds
from schemas.config import Config, Route

log = logging.getLogger("loginwatch.worker")

KIND: Final = "question"  # the flood budget questions count in


class Asker:
    """Asks the users a config's routes want asked; one per worker thread."""

    def __init__(
        self, config: Config, store: Store, channel: Channel, signer: Signer, messages: Messages
    ) -> None:
        if config.web.base_url is None:
            raise ValueError("asking needs [web] base_url")
        self.config = config
        self.routes = config.route
        self.notify = config.notify_user
        self.base_url = config.web.base_url
        self.table = QuestionTable(store.db)
        self.channel = channel
        self.signer = signer
        self.messages = messages
        self.answer_for = timedelta(seconds=span_seconds(config.notify_user.answer_within))

    def wanted(self, enriched: Enriched) -> bool:
        """Whether a route that decides this event asks (cheap: no store)."""
        event = enriched.event
        return event.kind == "login" and any(
            route.ask for _, route in first_routes(self.routes, event).values()
        )

    def decide(self, work: StoreBatch, enriched: Enriched, now: datetime) -> Ask:
        """Whom to ask about the event, on the budget the batch read (and, when someone is
        to be asked, read again with the sent log).

        Raises:
            StoreError: the store failed.
        """
        event = enriched.event
        found = target_of(event.user, self.notify)
        routes = [route for _, route in first_routes(self.routes, event).values()]
        decided = self._ask(
            work, enriched, found.recipient, why=found.reason, now=now, routes=routes
        )
        if decided.recipient is None:
            return decided
        work.check(now, host=event.host, kind=KIND, keys=[key_of(event.id_hex)])
        return self._ask(work, enriched, found.recipient, why=found.reason, now=now, routes=routes)

    def _ask(
        self,
        work: StoreBatch,
        enriched: Enriched,
        recipient: str | None,
        *,
        why: str,
        now: datetime,
        routes: Sequence[Route],
    ) -> Ask:
        event = enriched.event
        asked = 0
        if recipient is not None:
            asked = work.flood_state(now, host=event.host, kind=KIND).fleet_count(
                recipient, KIND).sent  # fmt: skip
        return ask(event, routes, recipient, why, asked=asked, budget=self.notify.flood_max)

    def ask(self, work: StoreBatch, enriched: Enriched, decided: Ask, now: datetime) -> bool:
        """Store and send the question ``decided`` names; False: it went out before.

        Raises:
            TransientSendError, PermanentSendError, StoreError.
        """
        event = enriched.event
        recipient = decided.recipient
        if recipient is None:
            return False
        question = self.table.ask(Question(
            id=event.id_hex, host=event.host, user=event.user, client_ip=event.client_ip,
            client_port=event.client_port, fingerprint=event.fingerprint,
            login_at=event.time, asked=recipient, asked_at=now,
            expires_at=now + self.answer_for))  # fmt: skip
        scope = {"question": question.id}
        links = [link(self.base_url, action,
                      self.signer.sign(action, scope, question.asked, question.expires_at))
                 for action in (ANSWER_YES, ANSWER_NO)]  # fmt: skip
        key = key_of(event.id_hex)
        sent = send_once(_Ledger(work, question), self.channel, key,
                         lambda: self.messages.question(question, links[0], links[1], key),
                         now)  # fmt: skip
        log.info("%s question %s: %s; %s", event.id_hex, quoted(question.asked, 80),
                 "sent" if sent else "already sent (redelivery)", decided.reason)  # fmt: skip
        return sent


def key_of(event_id: str) -> str:
    """The sent-log key of a login's question: one per login."""
    return f"question:{event_id}"


class _Ledger:
    """The batch's sent log for ``send_once``: recording a question counts it in its
    target's question budget, in the same commit."""

    def __init__(self, work: StoreBatch, question: Question) -> None:
        self.work, self.question = work, question

    def was_sent(self, key: str) -> bool:
        return self.work.was_sent(key)

    def record_sent(self, key: str, now: datetime) -> None:
        burst: Budget | None = None
        self.work.record_sent(key, now, recipient=self.question.asked.lower(),
                              host=self.question.host, kind=KIND, burst=burst)  # fmt: skip
