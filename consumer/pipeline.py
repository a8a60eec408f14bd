"""The worker's pipeline: decode → facts → policy → names → render → send, in one function.

Enrichment is split around the policy: the cheap facts every event needs (GeoIP, first-seen
from the store) come before ``decide``; reverse DNS, which costs network round trips in this
one thread, only once a decision mails someone (digested, folded and ignored events skip it).

``process_batch(stages, incomings)`` runs the messages the worker took together (those
waiting, up to ``HAND_BACK_BATCH``) and returns one ``Settlement`` per message — done (ack),
park (retry queue later) or dead (dead queue) — with the reason; ``process`` is a batch of
one. The worker (consumer/worker.py) only settles them with the broker, after the batch's
writes committed. It logs one line per decision, with the event id and the policy's reason.

A batch goes through the stages like this (``process_batch`` below, the contract of each
stage; ``consumer/store/batch.py`` says what each store step costs)::

    events   = [decode(body) for body in batch]              # schemas.event.decode
    placed   = [enricher.placed(event, now) ...]             # cheap: GeoIP, network
    work     = store.batch([enricher.sighting(p, now) ...], budgets=…)  # first-seen written,
                                                             #   flood budgets read: 1 round trip
    for each event, in order (decided exactly as it would be alone):
        state = work.flood_state(now, host=event.host, kind=event.kind)   # in memory
        decisions = policy.decide(enriched, state, now)      # pure; log each decision.reason
        if any(decision.action in MAILING for decision in decisions):
            work.check(now, host=…, kind=…, keys=…)          # fresh counts, the sent log
            decisions = policy.decide(enriched, work.flood_state(…), now)
        work.log_decisions(event.id_hex, decisions, now)     # silenced/folded/burst, for the digest
        if any(decision.action in MAILING for decision in decisions):
            enriched = enricher.names(enriched)              # costly: reverse DNS, bounded
        for decision in decisions:
            if decision.action not in MAILING:
                continue                                     # digest/ignore/silenced/folded
            key = sent_key(event, decision)
            if work.was_sent(key):
                continue                                     # redelivered: mail already went out
            sender.send(renderer.render(enriched, decision)) # stages.render, stages.smtp
            work.record_sent(key, now, …)                    # record-after (STYLE.md #4), and
                                                             #   the flood counts, one commit
    work.flush()                                             # the decisions still queued
    ack the batch

A batch that the store refuses as a whole (its first round trip fails) is taken again one
event at a time, so only an event the store refuses is parked.

Errors, all from ``schemas.errors``:

- the store (``store.batch`` and every step of ``work``) raises ``StoreError`` when it fails
  (park the message and retry later); DNS and GeoIP failures never raise, they just leave
  the fields empty.
- ``renderer.render`` raises ``PermanentSendError`` for a broken (operator) template.
- ``sender.send`` raises ``TransientSendError`` only after its own short tenacity retries
  (park in the retry queues), ``PermanentSendError`` for 5xx / refused recipients (dead queue).

Mail is sent at least once. Two windows can still duplicate a mail, both with the same
``Message-ID`` (some mail stores and clients fold such copies): the SMTP server stored it but
the connection dropped before its ``250`` reached us (``send`` retries it), or the worker died
between the ``250`` and ``record_sent``. The sent log prevents every other duplicate:
a mail whose ``record_sent`` committed is never sent again.

Flood control is counted in the store (shared by every worker) per recipient, host and kind,
and per recipient and kind for all hosts together; two workers that decide at the same instant
may each send one mail past a limit — the limits are calm-down thresholds, not exact quotas.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from consumer import metrics
from consumer.decisions import MAILING, Decision, sent_key
from consumer.enriched import Enriched
from consumer.stages.decode import Decoder, Identity, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.stages.smtp import Sender, SmtpSender
from consumer.store import Store, StoreBatch, open_store
from schemas.config import Config, store_password
from schemas.errors import DecodeError, PermanentSendError, StoreError, TransientSendError
from schemas.topology import user_host

log = logging.getLogger("loginwatch.worker")


class Verdict(enum.Enum):
    DONE = "done"  # ack: mailed, already mailed, or nothing to mail
    PARK = "park"  # ack after parking in the next retry queue
    DEAD = "dead"  # ack after moving to the dead queue


@dataclass(frozen=True)
class Settlement:
    """What becomes of one delivery (its ack verdict), with the reason."""

    verdict: Verdict
    reason: str
    event_id: str = "-"


@dataclass(frozen=True)
class Stages:
    """The stage objects of one worker thread (they are not shared between threads)."""

    decode: Decoder
    enrich: Enricher
    policy: Policy
    render: Renderer
    send: Sender
    store: Store
    clock: Callable[[], datetime]

    def close(self) -> None:
        self.send.close()
        self.enrich.close()
        self.store.close()


def build_stages(config: Config) -> Stages:
    """Open the store and build every stage from the config.

    Raises:
        StoreError: the store cannot be opened.
        ConfigError: a stage rejects its configuration.
    """
    store = open_store(config.store.url, password=store_password(config.store))
    return Stages(
        decode=Decoder(Identity.from_config(config)),
        enrich=Enricher(config.enrich, store),
        policy=Policy(config),
        render=Renderer(config),
        send=SmtpSender(config.smtp),
        store=store,
        clock=lambda: datetime.now(UTC),
    )


def process(stages: Stages, incoming: Incoming) -> Settlement:
    """Run one message through the pipeline; never raises for bad input or a failed send."""
    return process_batch(stages, [incoming])[0]


@dataclass(frozen=True)
class _Taken:
    """A decoded event of a batch, where it goes back (``index``), and what it reads as."""

    index: int
    placed: Enriched
    own_host: bool
    votes: bool


def process_batch(stages: Stages, batch: Sequence[Incoming]) -> list[Settlement]:
    """Run messages through the pipeline in order, each decided exactly as if it came alone
    (``consumer/store/batch.py``: the store's work in a few round trips); one settlement
    per message, in order. Never raises for bad input or a failed send."""
    settled: list[Settlement] = [Settlement(Verdict.DEAD, "not decoded")] * len(batch)
    now = stages.clock()
    taken: list[_Taken] = []
    for index, incoming in enumerate(batch):
        try:
            event = stages.decode(incoming)
        except DecodeError as exc:
            settled[index] = Settlement(Verdict.DEAD, exc.reason)
            continue
        metrics.decoded(event.outcome.name.lower())
        own_host = user_host(incoming.user_id or "") == event.host
        # A relay's reports are no first-seen votes for other hosts (Identity.votes).
        votes = (
            own_host
            or not incoming.user_id
            or stages.decode.identity.votes(incoming.user_id, event.host)
        )
        taken.append(_Taken(index, stages.enrich.placed(event, now), own_host, votes))
    for item, settlement in _run(stages, taken, now):
        settled[item.index] = settlement
    return settled


def _run(stages: Stages, taken: list[_Taken], now: datetime) -> list[tuple[_Taken, Settlement]]:
    """First-seen and flood counts for all of ``taken`` at once, then each in order."""
    if not taken:
        return []
    sightings = [stages.enrich.sighting(t.placed, now, votes=t.votes) for t in taken]
    try:
        work = stages.store.batch(
            sightings,
            budgets=[(t.placed.event.host, t.placed.event.kind) for t in taken],
            now=now,
            window=stages.policy.flood_window,
        )
    except StoreError as exc:
        metrics.store_error()
        if len(taken) > 1:  # one at a time: only an event the store refuses is parked
            return [done for item in taken for done in _run(stages, [item], now)]
        return [(taken[0], Settlement(Verdict.PARK, f"store: {exc}", taken[0].placed.event.id_hex))]
    done = []
    for item, seen in zip(taken, work.first_seen, strict=True):
        enriched = msgspec.structs.replace(item.placed, first_seen=seen, own_host=item.own_host)
        metrics.first_seen(seen.address, seen.network, seen.country)
        done.append((item, _decide(stages, work, enriched)))
    try:
        work.flush()
    except StoreError as exc:
        metrics.store_error()
        unwritten = work.unwritten()
        done = [(item, Settlement(Verdict.PARK, f"store: {exc}", s.event_id)
                 if s.event_id in unwritten and s.verdict is Verdict.DONE else s)
                for item, s in done]  # fmt: skip
    return done


def _decide(stages: Stages, work: StoreBatch, enriched: Enriched) -> Settlement:
    """Decide one event of a batch and send its mails; never raises for a failed send."""
    event = enriched.event
    now = stages.clock()
    try:
        state = work.flood_state(now, host=event.host, kind=event.kind)
        decisions = stages.policy.decide(enriched, state, now)
        if mailing := [d for d in decisions if d.action in MAILING]:
            # The batch's counts miss what other workers sent since they were read (which
            # can only fold a mail): decide a mailing event again on counts read now.
            keys = [sent_key(event, d) for d in mailing]
            work.check(now, host=event.host, kind=event.kind, keys=keys)
            state = work.flood_state(now, host=event.host, kind=event.kind)
            decisions = stages.policy.decide(enriched, state, now)
        # Silenced / folded / burst decisions, for the digest's "kept out of your inbox".
        work.log_decisions(event.id_hex, decisions, now)
    except StoreError as exc:
        metrics.store_error()
        return Settlement(Verdict.PARK, f"store: {exc}", event.id_hex)
    if any(decision.action in MAILING for decision in decisions):
        enriched = stages.enrich.names(enriched)
    transient: list[str] = []
    permanent: list[str] = []
    for decision in decisions:
        try:
            _mail(stages, work, enriched, decision, now)
        except TransientSendError as exc:
            transient.append(f"{decision.recipient}: {exc}")
        except PermanentSendError as exc:
            permanent.append(f"{decision.recipient}: {exc}")
        except StoreError as exc:
            metrics.store_error()
            transient.append(f"store: {exc}")
    # A transient failure parks the whole event: recipients already mailed are
    # skipped on its return (sent log), the others are tried again.
    if transient:
        metrics.mails_failed(parked=len(transient) + len(permanent), dead=0)
        return Settlement(Verdict.PARK, "; ".join(transient + permanent), event.id_hex)
    if permanent:
        metrics.mails_failed(parked=0, dead=len(permanent))
        return Settlement(Verdict.DEAD, "; ".join(permanent), event.id_hex)
    return Settlement(Verdict.DONE, f"{len(decisions)} decision(s)", event.id_hex)


def _mail(
    stages: Stages, work: StoreBatch, enriched: Enriched, decision: Decision, now: datetime
) -> None:
    """Check-before, send, record-after for one decision (STYLE.md #4).

    Raises:
        TransientSendError, PermanentSendError, StoreError.
    """
    event = enriched.event
    action = decision.action.value
    if decision.action not in MAILING:
        log.info("%s %s %s: %s", event.id_hex, action, decision.recipient or "-", decision.reason)
        return
    key = sent_key(event, decision)
    if work.was_sent(key):
        log.info("%s %s %s: already sent (redelivery)", event.id_hex, action, decision.recipient)
        return
    stages.send.send(stages.render.render(enriched, decision))
    metrics.mail_sent(event.time, now)
    work.record_sent(key, now, recipient=decision.recipient or "", host=event.host,
                     kind=event.kind, burst=decision.burst)  # fmt: skip
    log.info("%s %s %s: sent; %s", event.id_hex, action, decision.recipient, decision.reason)
