"""The worker's pipeline: decode → facts → policy → names → render → deliver, in one function.

Enrichment is split around the policy: the cheap facts every event needs (GeoIP, first-seen
from the store) come before ``decide``; reverse DNS, which costs network round trips in this
one thread, only once a decision mails someone (digested, folded and ignored events skip it).

``process(stages, incoming)`` runs one message through the stages and returns
a ``Settlement`` — done (ack), park (retry queue later) or dead (dead queue) — with
the reason; the worker (consumer/worker.py) only settles it with the broker.
It logs one line per decision, with the event id and the policy's reason.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from consumer import metrics
from consumer.model import MAILING, Decision, Enriched, delivery_key
from consumer.stages.decode import Decoder, Identity, Incoming
from consumer.stages.deliver import SmtpSender
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Store, open_store
from schemas.config import Config
from schemas.errors import DecodeError, PermanentDelivery, StoreError, TransientDelivery
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
    send: SmtpSender
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
    store = open_store(config.store.url)
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
    try:
        event = stages.decode(incoming)
    except DecodeError as exc:
        return Settlement(Verdict.DEAD, exc.reason)
    metrics.decoded(event.outcome.name.lower())
    now = stages.clock()
    try:
        own_host = user_host(incoming.user_id or "") == event.host
        # A relay's reports are no first-seen votes for other hosts (Identity.votes).
        votes = (
            own_host
            or not incoming.user_id
            or stages.decode.identity.votes(incoming.user_id, event.host)
        )
        enriched = stages.enrich.facts(event, now, votes=votes)
        if own_host:
            enriched = msgspec.structs.replace(enriched, own_host=True)
        seen = enriched.first_seen
        metrics.first_seen(seen.address, seen.network, seen.country)
        state = stages.store.flood_state(
            now, stages.policy.flood_window, host=event.host, kind=event.kind
        )
        decisions = stages.policy.decide(enriched, state, now)
        # Silenced / folded / burst decisions, for the digest's "kept out of your inbox".
        stages.store.record_decisions(event.id_hex, decisions, now)
    except StoreError as exc:
        metrics.store_error()
        return Settlement(Verdict.PARK, f"store: {exc}", event.id_hex)
    if any(decision.action in MAILING for decision in decisions):
        enriched = stages.enrich.names(enriched)
    transient: list[str] = []
    permanent: list[str] = []
    for decision in decisions:
        try:
            _mail(stages, enriched, decision, now)
        except TransientDelivery as exc:
            transient.append(f"{decision.recipient}: {exc}")
        except PermanentDelivery as exc:
            permanent.append(f"{decision.recipient}: {exc}")
        except StoreError as exc:
            metrics.store_error()
            transient.append(f"store: {exc}")
    # A transient failure parks the whole event: recipients already mailed are
    # skipped on its return (delivery log), the others are tried again.
    if transient:
        metrics.mails_failed(parked=len(transient) + len(permanent), dead=0)
        return Settlement(Verdict.PARK, "; ".join(transient + permanent), event.id_hex)
    if permanent:
        metrics.mails_failed(parked=0, dead=len(permanent))
        return Settlement(Verdict.DEAD, "; ".join(permanent), event.id_hex)
    return Settlement(Verdict.DONE, f"{len(decisions)} decision(s)", event.id_hex)


def _mail(stages: Stages, enriched: Enriched, decision: Decision, now: datetime) -> None:
    """Check-before, send, record-after for one decision (STYLE.md #4).

    Raises:
        TransientDelivery, PermanentDelivery, StoreError.
    """
    event_id = enriched.event.id_hex
    action = decision.action.value
    if decision.action not in MAILING:
        log.info("%s %s %s: %s", event_id, action, decision.recipient or "-", decision.reason)
        return
    key = delivery_key(enriched.event, decision)
    if stages.store.delivered(key):
        log.info("%s %s %s: already sent (redelivery)", event_id, action, decision.recipient)
        return
    stages.send.send(stages.render.render(enriched, decision))
    metrics.mail_sent(enriched.event.time, now)
    stages.store.record_delivery(key, now)
    event = enriched.event
    stages.store.note_mail(
        decision.recipient or "", event.host, event.kind, now, burst=decision.burst
    )
    log.info("%s %s %s: sent; %s", event_id, action, decision.recipient, decision.reason)
