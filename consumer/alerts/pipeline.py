"""The worker's pipeline: decode → facts → policy → names → render → send, in one function.

Enrichment is split around the policy: the cheap facts every event needs (GeoIP, first-seen
from the store) come before ``decide``; reverse DNS, which costs network round trips in this
one thread, only once a decision mails someone (digested, folded and ignored events skip it).

``process_batch(stages, incomings)`` runs the messages the worker took together (those
waiting, up to ``HAND_BACK_BATCH``) and returns one ``Settlement`` per message — done (ack),
park (retry queue later) or dead (dead queue) — with the reason; ``process`` is a batch of
one. The worker (consumer/alerts/worker.py) only settles them with the broker, after the batch's
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
            key = sent_key(event, decision)                  # event + target (address or
                                                             #   receiver:NAME)
            send_once(ledger, channels, key, render, now):   # channels.base:
                if work.was_sent(key): skip                  #   redelivered: already went out
                channels.deliver(renderer.notice(…))         #   stages.render; the target's
                                                             #   channel (mail, a receiver)
                work.record_sent(key, now, …)                #   record-after (architecture.md
                                                             #   #4), and the flood counts,
                                                             #   one commit
    work.flush()                                             # the decisions still queued
    ack the batch

A batch that the store refuses as a whole (its first round trip fails) is taken again one
event at a time, so only an event the store refuses is parked.

Before a batch is decided, the run-time silences and the users' answers are read
(``SilenceBook``, ``AnswerBook``: from the store at most ``[worker] silence_interval``
ago). A failed read parks the whole batch: no event is decided without the silences. A
successful login whose deciding route asks is then asked "was this you?"
(``consumer/questions/asker.py``), after its alerts went out.

System alerts (``consumer/core/system.py``) go the same way, decide → render → send once:
an event whose host dropped logins raises ``login-dropped`` inside its own decision (its
sent-log key is the event's, so a redelivery sends nothing twice), and the worker hands
the floods it notices to ``raise_system`` (``consumer/alerts/system_alerts.py``). A batch
item marked ``quiet`` (its speaker floods) logs no decision that mails nobody.

Errors, all from ``schemas.errors``:

- the store (``store.batch`` and every step of ``work``) raises ``StoreError`` when it fails
  (park the message and retry later); DNS and GeoIP failures never raise, they just leave
  the fields empty.
- ``renderer.notice`` raises ``PermanentSendError`` for a broken (operator) template.
- the channel (``channels.deliver``: SMTP, or a receiver's HTTP) raises
  ``TransientSendError`` only after its own short tenacity retries (park in the retry
  queues), ``PermanentSendError`` for SMTP 5xx / refused recipients, HTTP 3xx / 4xx (dead
  queue, with the reason and no secret).

Mail is sent at least once. Two windows can still duplicate a mail, both with the same
``Message-ID`` (some mail stores and clients fold such copies): the SMTP server stored it but
the connection dropped before its ``250`` reached us (``send`` retries it), or the worker died
between the ``250`` and ``record_sent``. The sent log prevents every other duplicate:
a mail whose ``record_sent`` committed is never sent again. A receiver's notice has the same
two windows (a timeout after the request went out, a crash between its 2xx and the record);
docs/channels.md says per channel who folds the resend (a webhook's ``webhook-id``, ntfy's
``sequence_id``).

Flood control is counted in the store (shared by every worker) per recipient (an address or
a receiver), host and kind,
and per recipient and kind for all hosts together; two workers that decide at the same instant
may each send one mail past a limit — the limits are calm-down thresholds, not exact quotas.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from consumer.alerts import system_alerts
from consumer.alerts.detecting import Detecting
from consumer.alerts.hopping import with_hop
from consumer.alerts.records import as_event, beat_of, note_beats
from consumer.alerts.sending import Failures, Ledger
from consumer.channels.base import Channel, send_once
from consumer.channels.outlets import open_outlets
from consumer.core import metrics
from consumer.core.decisions import MAILING, Action, Decision, sent_key
from consumer.core.detections import Hop
from consumer.core.enriched import Enriched
from consumer.core.identity import Identity
from consumer.core.links import Signer
from consumer.core.system import SystemAlert, dropped_alert
from consumer.questions.asker import KIND as QUESTION
from consumer.questions.asker import Asker
from consumer.questions.flags import AnswerBook, Flags, flag_of
from consumer.questions.message import Messages
from consumer.questions.table import QuestionTable
from consumer.silences.book import SilenceBook
from consumer.silences.rules import Rule
from consumer.silences.table import SilenceTable
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Beat, HostReport, Store, StoreBatch, open_store
from schemas.config import Config, store_password
from schemas.errors import DecodeError, PermanentSendError, StoreError, TransientSendError
from schemas.files import read_secret_lines
from schemas.receivers import reference
from schemas.records import Heartbeat
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
    folded: bool = False  # flood control folded it for someone and it mailed nobody


@dataclass(frozen=True)
class Stages:
    """The stage objects of one worker thread (they are not shared between threads)."""

    decode: Decoder
    enrich: Enricher
    policy: Policy
    render: Renderer
    send: Channel  # every target's channel: mail, and each [receiver.NAME]
    store: Store
    clock: Callable[[], datetime]
    silences: SilenceBook
    answers: AnswerBook
    detecting: Detecting
    asker: Asker | None = None  # None: no route asks "was this you?"

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
    store = open_store(
        config.store.url, password=store_password(config.store), ca_file=config.store.ca_file
    )
    try:
        send = open_outlets(config)
    except BaseException:
        store.close()
        raise
    interval = config.worker.silence_interval.seconds
    try:
        signer = signer_of(config)
        asker = None
        if signer is not None and any(route.ask for route in config.route):
            asker = Asker(config, store, send, signer, Messages(config))
        return Stages(
            decode=Decoder(Identity.from_config(config)),
            enrich=Enricher(config.enrich, store),
            policy=Policy(config),
            render=Renderer(config, signer),
            send=send,
            store=store,
            clock=lambda: datetime.now(UTC),
            silences=SilenceBook(SilenceTable(store.db), config),
            answers=AnswerBook(QuestionTable(store.db), interval),
            detecting=Detecting(config, store.quota),
            asker=asker,
        )
    except BaseException:
        send.close()
        store.close()
        raise


def signer_of(config: Config) -> Signer | None:
    """The link signer of ``[web]`` (its keys read now), or None when alerts carry no
    links (no ``base_url``).

    Raises:
        ConfigError: the key file is missing, too open, or holds a short key.
    """
    if config.web.base_url is None:
        return None
    return Signer(read_secret_lines(config.web.secret_file, "$.web.secret_file"))


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
    quiet: bool = False


def process_batch(stages: Stages, batch: Sequence[Incoming]) -> list[Settlement]:
    """Run messages through the pipeline in order, each decided exactly as if it came alone
    (``consumer/store/batch.py``: the store's work in a few round trips); one settlement
    per message, in order. Never raises for bad input or a failed send."""
    settled: list[Settlement] = [Settlement(Verdict.DEAD, "not decoded")] * len(batch)
    now = stages.clock()
    taken: list[_Taken] = []
    beats: list[tuple[int, Beat]] = []
    for index, incoming in enumerate(batch):
        try:
            message = stages.decode.message(incoming)
        except DecodeError as exc:
            settled[index] = Settlement(Verdict.DEAD, exc.reason)
            continue
        if isinstance(message, Heartbeat):  # no event: never routed (alerts/records.py)
            beats.append((index, beat_of(message, now)))
            settled[index] = Settlement(Verdict.DONE, "heartbeat", message.id_hex)
            continue
        event, session = as_event(message)
        metrics.decoded(event.outcome.name.lower())
        own_host = user_host(incoming.user_id or "") == event.host
        # A relay's reports are no first-seen votes for other hosts (Identity.votes).
        votes = stages.decode.identity.votes(incoming.user_id, event.host)
        placed = stages.enrich.placed(event, now)
        if session is not None:
            placed = msgspec.structs.replace(placed, session=session)
        if incoming.arrived is not None:
            # Latencies count from the delivery's arrival here, never from the host's clock.
            arrived = datetime.fromtimestamp(incoming.arrived, UTC)
            placed = msgspec.structs.replace(placed, received=arrived)
        taken.append(_Taken(index, placed, own_host, votes, incoming.quiet))
    if (why := note_beats(stages.store, [beat for _, beat in beats])) is not None:
        for index, _ in beats:
            settled[index] = Settlement(Verdict.PARK, why, settled[index].event_id)
    for _, beat in beats:
        stages.detecting.jumps.learn(beat.addresses)
    for item, settlement in _run(stages, taken, now):
        settled[item.index] = settlement
    return settled


def _run(stages: Stages, taken: list[_Taken], now: datetime) -> list[tuple[_Taken, Settlement]]:
    """First-seen and flood counts for all of ``taken`` at once, then each in order."""
    if not taken:
        return []
    try:
        standing = _Standing(stages.silences.rules(now), stages.answers.flags(now))
    except StoreError as exc:
        metrics.store_error()
        why = f"store: cannot read the silences, nothing decided without them: {exc}"
        return [(t, Settlement(Verdict.PARK, why, t.placed.event.id_hex)) for t in taken]
    hops = stages.detecting.jumps.found(stages.store, [t.placed for t in taken])
    taken = [_hopped(stages, t, found, now) for t, found in zip(taken, hops, strict=True)]
    sightings = [stages.enrich.sighting(t.placed, now, votes=t.votes) for t in taken]
    budgets = [(t.placed.event.host, t.placed.event.kind) for t in taken]
    budgets += [(a.host, a.kind) for t in taken if (a := dropped_alert(t.placed.event))]
    if stages.asker is not None:
        budgets += [(t.placed.event.host, QUESTION) for t in taken
                    if stages.asker.wanted(t.placed)]  # fmt: skip
    detections = stages.detecting.batch([t.placed for t in taken], now)
    try:
        work = stages.store.batch(
            sightings,
            budgets=budgets,
            now=now,
            window=stages.policy.flood_window,
            # Which version each host runs (loginwatch status), with the batch's first write.
            hosts=[
                HostReport(t.placed.event.host, now, t.placed.event.hook_version) for t in taken
            ],
            reads=detections.reads,
        )
    except StoreError as exc:
        metrics.store_error()
        if len(taken) > 1:  # one at a time: only an event the store refuses is parked
            return [done for item in taken for done in _run(stages, [item], now)]
        return [(taken[0], Settlement(Verdict.PARK, f"store: {exc}", taken[0].placed.event.id_hex))]
    done = []
    detections.load(work)
    for item, seen in zip(taken, work.first_seen, strict=True):
        answer, flag = flag_of(standing.flags, item.placed.event)
        enriched = msgspec.structs.replace(item.placed, first_seen=seen, own_host=item.own_host,
                                           answer=answer, answer_flag=flag)  # fmt: skip
        enriched = detections.found(enriched)
        metrics.first_seen(seen.address, seen.network, seen.country)
        done.append((item, _decide(stages, work, enriched, standing.rules, quiet=item.quiet)))
    try:
        work.flush()
    except StoreError as exc:
        metrics.store_error()
        unwritten = work.unwritten()
        done = [(item, Settlement(Verdict.PARK, f"store: {exc}", s.event_id)
                 if s.event_id in unwritten and s.verdict is Verdict.DONE else s)
                for item, s in done]  # fmt: skip
    return done


def _hopped(stages: Stages, item: _Taken, found: Hop | None, now: datetime) -> _Taken:
    """``item`` placed as its original client when it is a hop through a jump host."""
    if found is None:
        return item
    event = item.placed.event
    placed = with_hop(item.placed, found, lambda client: stages.enrich.placed(
        msgspec.structs.replace(event, client_ip=client), now))  # fmt: skip
    return dataclasses.replace(item, placed=placed)


@dataclass(frozen=True)
class _Standing:
    """What a batch is decided with besides the store's counts: silences, answers."""

    rules: tuple[Rule, ...]
    flags: Flags


def _decide(
    stages: Stages,
    work: StoreBatch,
    enriched: Enriched,
    silences: tuple[Rule, ...],
    *,
    quiet: bool = False,
) -> Settlement:
    """Decide one event of a batch and send its mails; never raises for a failed send."""
    event = enriched.event
    now = stages.clock()
    try:
        state = work.flood_state(now, host=event.host, kind=event.kind)
        decisions = stages.policy.decide(enriched, state, now, silences=silences)
        if mailing := [d for d in decisions if d.action in MAILING]:
            # The batch's counts miss what other workers sent since they were read (which
            # can only fold a mail): decide a mailing event again on counts read now.
            keys = [sent_key(event, d) for d in mailing]
            work.check(now, host=event.host, kind=event.kind, keys=keys)
            state = work.flood_state(now, host=event.host, kind=event.kind)
            decisions = stages.policy.decide(enriched, state, now, silences=silences)
        # Silenced / folded / burst decisions, for the digest's "kept out of your inbox".
        work.log_decisions(event.id_hex, decisions, now)
    except StoreError as exc:
        metrics.store_error()
        return Settlement(Verdict.PARK, f"store: {exc}", event.id_hex)
    if any(decision.action in MAILING for decision in decisions):
        enriched = stages.enrich.names(enriched)
    failed = Failures()
    for decision in decisions:
        with failed.of(decision):
            _mail(stages, work, enriched, decision, now, quiet=quiet)
    if (alert := dropped_alert(event)) is not None:
        system_alerts.decide_and_send(work, alert, failed, policy=stages.policy,
                                      renderer=stages.render, channel=stages.send, now=now,
                                      arrived=enriched.received, silences=silences)  # fmt: skip
    if stages.asker is not None and stages.asker.wanted(enriched):
        _ask(stages.asker, work, enriched, now, failed.transient)
    # A transient failure parks the whole event: recipients already mailed are
    # skipped on its return (sent log), the others are tried again.
    transient, permanent = failed.transient, failed.permanent
    if transient:
        metrics.mails_failed(parked=len(transient) + len(permanent), dead=0)
        return Settlement(Verdict.PARK, "; ".join(transient + permanent), event.id_hex)
    if permanent:
        metrics.mails_failed(parked=0, dead=len(permanent))
        return Settlement(Verdict.DEAD, "; ".join(permanent), event.id_hex)
    folded = any(d.action is Action.FOLDED for d in decisions) and not any(
        d.action in MAILING for d in decisions
    )
    return Settlement(Verdict.DONE, f"{len(decisions)} decision(s)", event.id_hex, folded)


def raise_system(stages: Stages, alerts: Sequence[SystemAlert]) -> list[SystemAlert]:
    """Decide and send system alerts the worker raised itself (a flood it noticed), under
    the silences in force; returns those to raise again later (``system_alerts.raise_all``)."""
    now = stages.clock()
    try:
        silences = stages.silences.rules(now)
    except StoreError:
        metrics.store_error()
        return list(alerts)  # nothing decided without the silences: next batch
    return system_alerts.raise_all(stages.store, alerts, policy=stages.policy,
                                   renderer=stages.render, channel=stages.send, now=now,
                                   silences=silences)  # fmt: skip


def _ask(
    asker: Asker,
    work: StoreBatch,
    enriched: Enriched,
    now: datetime,
    transient: list[str],
) -> None:
    """Ask "was this you?" when a route wants it; a transient failure parks the event (the
    sent log skips what went out), a permanent one is logged: the event was handled."""
    event = enriched.event
    try:
        decided = asker.decide(work, enriched, now)
        if decided.recipient is None:
            log.info("%s question -: %s", event.id_hex, decided.reason)
            return
        asker.ask(work, enriched, decided, now)
    except TransientSendError as exc:
        transient.append(f"question: {exc}")
    except StoreError as exc:
        metrics.store_error()
        transient.append(f"question: store: {exc}")
    except PermanentSendError as exc:
        log.warning("%s question not sent: %s", event.id_hex, exc)


def _mail(
    stages: Stages,
    work: StoreBatch,
    enriched: Enriched,
    decision: Decision,
    now: datetime,
    *,
    quiet: bool = False,
) -> None:
    """Check-before, send, record-after for one decision (architecture.md #4), to an
    address or a receiver alike (``channels.base.send_once``); ``quiet``: a decision that
    sends nothing is not logged (its speaker floods: the worker counts them).

    Raises:
        TransientSendError, PermanentSendError, StoreError.
    """
    event = enriched.event
    action = decision.action.value
    if decision.action not in MAILING:
        if not quiet:
            log.info("%s %s %s: %s", event.id_hex, action, decision.recipient or "-",
                     decision.reason)  # fmt: skip
        return
    key = sent_key(event, decision)
    ledger = Ledger(work, decision, host=event.host, kind=event.kind)
    sent = send_once(ledger, stages.send, key,
                     lambda: stages.render.notice(enriched, decision, key), now)  # fmt: skip
    if not sent:
        log.info("%s %s %s: already sent (redelivery)", event.id_hex, action, decision.recipient)
        return
    if reference(decision.recipient or "") is None:
        arrived = enriched.received or now  # when the event reached this worker
        metrics.mail_sent(arrived.timestamp(), stages.clock().timestamp())
    log.info("%s %s %s: sent; %s", event.id_hex, action, decision.recipient, decision.reason)
