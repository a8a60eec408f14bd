"""What the worker does per speaker around each batch: shed, count, alert, log.

The pipeline thread runs a batch through ``Speakers`` (consumer/alerts/worker.py):

1. ``messages``: who sent each delivery and what it is (refused, a failed login, other),
   decoded once more here, cheaply, before the pipeline decodes what it keeps;
2. ``shed``: which of them ``shedding.Shedder`` acks and counts instead, and of a flooding
   speaker's other messages (its logins), those the policy decides mail nobody: each is
   decided on the flood counts (read at most once a second per host and kind), nothing written
   (no first-seen vote from a flooding host, no decision row) and nothing logged one by
   one; a login that mails someone goes through the pipeline as always;
3. ``learn``: what became of the others (folded by flood control spends the budget, as a
   refusal did when ``shed`` saw it); every failed login settled or shed is counted per
   source (``FailureTally``);
4. ``after``: the floods that started become ``host-flooding`` system alerts
   (``pipeline.raise_system``, retried while they fail), the rate-limited log lines are
   written, and the failure counts go to the store at most once a second.

A login after a brute force (``consumer/detect/brute.py``) is never folded, so a
flooding speaker's login from a source that failed within ``[detect] brute_window`` is
never decided quietly (its counts are not read there): it goes through the pipeline, which
reads them. And before a batch that holds a login, the failure counts not written yet go
to the store (``before``), so the pipeline reads every failure this worker counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from consumer.alerts import pipeline
from consumer.alerts.pipeline import Settlement, Stages, Verdict
from consumer.alerts.records import as_event
from consumer.alerts.shedding import Kind, Message, Shedder
from consumer.broker.delivery import Delivery
from consumer.core import metrics
from consumer.core.decisions import MAILING, Action, PolicyState
from consumer.core.enriched import Enriched
from consumer.core.identity import effective_user
from consumer.core.system import SystemAlert, flooding_alert
from consumer.stages.decode import Incoming
from consumer.store.failures import FailureTally
from schemas.config import Config
from schemas.errors import DecodeError, StoreError
from schemas.event import LoginEvent, Outcome
from schemas.records import Heartbeat
from schemas.topology import user_host

log = logging.getLogger("loginwatch.worker")

WRITE_EVERY_S: Final = 1.0  # failure counts go to the store at most this often
# How long the flood counts a flooding speaker's logins are decided on may be reused. The
# counts are kept per 10 s slot anyway (consumer/store/flood.py), and what another worker
# mailed meanwhile can only fold more; a login that mails is decided again on fresh counts.
COUNTS_FOR_S: Final = 1.0
PENDING_MAX: Final = 100  # system alerts waiting to be sent again, at most
RECENT_MAX: Final = 10_000  # sources remembered as failing lately (the oldest go first)
UNKNOWN: Final = "(no user_id)"


def speaker_of(delivery: Delivery, own_user: str | None) -> str:
    """The broker user behind ``delivery``: the identity it had on arrival (its
    ``user_id``, which RabbitMQ checks), else the user its routing key begins with (which
    the user's topic permission makes RabbitMQ check), else ``UNKNOWN``."""
    user = effective_user(delivery.user_id, delivery.headers, own_user)
    if user:
        return user
    if delivery.user_id is None and "." in delivery.routing_key:
        return delivery.routing_key.rpartition(".")[0]
    return UNKNOWN


class Speakers:
    """The per-speaker bookkeeping of one worker's pipeline thread (not thread-safe)."""

    def __init__(self, config: Config, own_user: str | None) -> None:
        worker = config.worker
        self.own_user = own_user
        self.shedder = Shedder(worker.speaker_budget, worker.speaker_window.seconds,
                               worker.dead_per_speaker, exempt=own_user)  # fmt: skip
        self.failures = FailureTally()
        self.brute_window = config.detect.brute_window.seconds
        self._recent: dict[str, float] = {}  # source → its last failed login (stamp)
        self.pending: list[SystemAlert] = []
        self._written = 0.0
        self._counts: dict[tuple[str, str], tuple[float, PolicyState]] = {}

    def messages(self, stages: Stages, batch: Sequence[Delivery]) -> list[Message]:
        """What each delivery is, for shedding (never raises for bad input)."""
        return [self._message(stages, delivery) for delivery in batch]

    def _message(self, stages: Stages, delivery: Delivery) -> Message:
        speaker = speaker_of(delivery, self.own_user)
        user = effective_user(delivery.user_id, delivery.headers, self.own_user)
        try:
            found = stages.decode.message(Incoming(delivery.body, user))
        except DecodeError as exc:
            return Message(speaker, Kind.REFUSED, reason=exc.reason[:200])
        if isinstance(found, Heartbeat):
            return Message(speaker, Kind.OTHER)  # the pipeline notes it: never shed
        event, _ = as_event(found)
        if event.outcome is Outcome.FAILURE:
            return Message(speaker, Kind.FAILURE, host=event.host,
                           source=event.client_ip or event.rhost)  # fmt: skip
        return Message(speaker, Kind.OTHER, event=event)

    def shed(
        self, stages: Stages, messages: Sequence[Message], now: datetime
    ) -> list[Settlement | None]:
        """Per message: its settlement when it is acked and counted instead of processed
        (shed, or decided quietly), or None: the pipeline takes it."""
        stamp = now.timestamp()
        flooding = set(self.shedder.flooding())
        settled: list[Settlement | None] = []
        for message in messages:
            reason = self.shedder.shed(message, stamp)
            if reason is not None:
                metrics.shed(message.kind.value)
                self._count_failure(message, now)
                settled.append(Settlement(Verdict.DONE, reason))
            elif message.event is not None and message.speaker in flooding:
                settled.append(self._quietly(stages, message, message.event, now))
            else:
                settled.append(None)
        return settled

    def _quietly(
        self, stages: Stages, message: Message, event: LoginEvent, now: datetime
    ) -> Settlement | None:
        """A flooding speaker's login decided on the flood counts alone; None when it mails
        someone (or the store cannot say): the pipeline takes it then."""
        if event.kind == "login" and self._failed_lately(event.client_ip or event.rhost, now):
            return None  # perhaps after a brute force: never folded, the pipeline decides
        state = self._flood_counts(stages, event.host, event.kind)
        if state is None:
            return None
        # The policy reads the event and whose own it is, nothing enrichment learns.
        own = user_host(message.speaker) == event.host
        decisions = stages.policy.decide(Enriched(event=event, own_host=own), state, now)
        if any(d.action in MAILING for d in decisions):
            return None
        folded = any(d.action is Action.FOLDED for d in decisions)
        if folded:
            self.shedder.folded(message.speaker, now.timestamp())
        self.shedder.decided(message.speaker)
        metrics.shed("decided")
        actions = ", ".join(sorted({d.action.value for d in decisions}))
        return Settlement(Verdict.DONE, f"decided while {message.speaker} floods: {actions}",
                          event.id_hex, folded)  # fmt: skip

    def learn(
        self, messages: Sequence[Message], settled: Sequence[Settlement], now: datetime
    ) -> None:
        """What became of the messages the pipeline processed (refused ones spent their
        budget when ``shed`` saw them)."""
        stamp = now.timestamp()
        for message, settlement in zip(messages, settled, strict=True):
            if settlement.folded:
                self.shedder.folded(message.speaker, stamp)
            self.shedder.decided(message.speaker)
            if settlement.verdict is Verdict.DONE:
                self._count_failure(message, now)

    def _flood_counts(self, stages: Stages, host: str, kind: str) -> PolicyState | None:
        """The flood counts of ``host`` and ``kind``, read at most every ``COUNTS_FOR_S``;
        None when the store fails."""
        pair, clock = (host, kind), time.monotonic()
        cached = self._counts.get(pair)
        if cached is not None and clock - cached[0] < COUNTS_FOR_S:
            return cached[1]
        try:
            state = stages.store.flood_state(stages.clock(), stages.policy.flood_window,
                                             host=host, kind=kind)  # fmt: skip
        except StoreError:
            metrics.store_error()
            return None
        if len(self._counts) > 1000:  # the speakers of the last second or so
            self._counts.clear()
        self._counts[pair] = (clock, state)
        return state

    def after(self, stages: Stages, now: datetime) -> None:
        """The end of a batch: flood alerts, log lines, failure counts (never raises for a
        failed send or store)."""
        stamp = now.timestamp()
        for flood in self.shedder.started():
            log.warning("%s floods: %d of its messages within %gs were refused or folded;"
                        " its refused messages and failed logins are now counted, not"
                        " processed, and its logins decided on the flood counts alone (those"
                        " that mail someone as always)", flood.speaker,
                        flood.refused + flood.folded, self.shedder.window)  # fmt: skip
            host = user_host(flood.speaker) or flood.speaker
            self.pending.append(flooding_alert(
                flood.speaker, host, now=now, budget=self.shedder.budget,
                window=self.shedder.window, refused=flood.refused, folded=flood.folded,
                reasons=flood.first_reasons))  # fmt: skip
        for line in self.shedder.lines(stamp):
            log.warning("%s", line)
        metrics.shedding(len(self.shedder.flooding()))
        if self.pending:
            self.pending = pipeline.raise_system(stages, self.pending)[-PENDING_MAX:]
        if time.monotonic() - self._written >= WRITE_EVERY_S:
            self.write(stages, now)

    def write(self, stages: Stages, now: datetime) -> None:
        """The failure counts to the store; kept for the next try when it fails."""
        self._written = time.monotonic()
        try:
            stages.store.count_failures(self.failures, now)
        except StoreError as exc:
            metrics.store_error()
            log.warning("failed-login counts not written yet: %s", exc)

    def before(self, stages: Stages, messages: Sequence[Message], now: datetime) -> None:
        """Before the pipeline takes ``messages``: when one is a login, the failure counts
        not written yet go to the store first (the pipeline reads them for it)."""
        if self.failures.counts and any(
            m.event is not None and m.event.kind == "login" for m in messages
        ):
            self.write(stages, now)

    def _failed_lately(self, source: str, now: datetime) -> bool:
        stamp = self._recent.get(source)
        return stamp is not None and now.timestamp() - stamp <= self.brute_window

    def _count_failure(self, message: Message, now: datetime) -> None:
        if message.kind is Kind.FAILURE:
            self.failures.add(message.host, message.source, now)
            self._recent.pop(message.source, None)
            self._recent[message.source] = now.timestamp()
            if len(self._recent) > RECENT_MAX:
                del self._recent[next(iter(self._recent))]
