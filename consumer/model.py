"""The frozen objects passed between the worker's stages, and the pipeline contract.

One event goes through the stages like this (the worker builds this in one function)::

    event    = decode(body)                                  # schemas.event.decode
    enriched = enricher.facts(event, now)                    # cheap: GeoIP, first-seen
    state    = store.flood_state(now, policy.flood_window, host=event.host, kind=event.kind)
    decisions = policy.decide(enriched, state, now)          # pure; log each decision.reason
    store.record_decisions(event.id_hex, decisions, now)     # silenced/folded/burst, for the digest
    if any(decision.action in MAILING for decision in decisions):
        enriched = enricher.names(enriched)                  # costly: reverse DNS, bounded
    for decision in decisions:
        if decision.action not in MAILING:
            continue                                         # digest/ignore/silenced/folded
        key = delivery_key(event, decision)
        if store.delivered(key):
            continue                                         # redelivered: mail already went out
        msg = renderer.render(enriched, decision)            # stages.render.Renderer
        sender.send(msg)                                     # stages.deliver.SmtpSender
        store.record_delivery(key, now)                      # record-after (STYLE.md #4)
        store.note_mail(decision.recipient, event.host, event.kind, now, burst=decision.burst)
    ack

Errors, all from ``schemas.errors``:

- ``enricher`` raises ``StoreError`` when the store fails (park the message and retry later);
  DNS and GeoIP failures never raise, they just leave the fields empty.
- ``renderer.render`` raises ``PermanentDelivery`` for a broken (operator) template.
- ``sender.send`` raises ``TransientDelivery`` only after its own short tenacity retries
  (park in the retry queues), ``PermanentDelivery`` for 5xx / refused recipients (dead queue).

Delivery is at least once. Two windows can still duplicate a mail, both with the same
``Message-ID`` (some mail stores and clients fold such copies): the SMTP server stored it but
the connection dropped before its ``250`` reached us (``send`` retries it), or the worker died
between the ``250`` and ``record_delivery``. The delivery log prevents every other duplicate:
a mail whose ``record_delivery`` committed is never sent again.

Flood control is counted in the store (shared by every worker) per recipient, host and kind,
and per recipient and kind for all hosts together; two workers that decide at the same instant
may each send one mail past a limit — the limits are calm-down thresholds, not exact quotas.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Final, Protocol, TypeVar

import msgspec

from schemas.event import LoginEvent


class FirstSeen(msgspec.Struct, frozen=True, kw_only=True):
    """Whether this is the user's first login from this address / network / country.

    Each is False when the event has nothing to compare (no client address, no country).
    """

    address: bool = False
    network: bool = False
    country: bool = False

    @property
    def any(self) -> bool:
        return self.address or self.network or self.country


class Enriched(msgspec.Struct, frozen=True, kw_only=True):
    """An event plus what the central side learned about its source."""

    event: LoginEvent
    rdns: str | None = None
    # True only when the name resolves back to the client address (forward-confirmed).
    rdns_verified: bool = False
    # ISO 3166 code (``"DE"``) and English names from the GeoIP database.
    country: str | None = None
    country_name: str | None = None
    city: str | None = None
    # The client's /24 (IPv4) or /64 (IPv6), e.g. ``"192.0.2.0/24"``; None without an address.
    network: str | None = None
    first_seen: FirstSeen = FirstSeen()
    # When the central side received the event (the host's ``event.time`` is its own word).
    received: datetime | None = None
    # The host's own broker user (``host-NAME``) reported it, not a relay or the central
    # user speaking for many names: the fleet flood budget never folds such a login
    # (``stages/policy.py``), so no other sender's flood can hide it.
    own_host: bool = False


class Action(enum.Enum):
    """What happens for one recipient of one event."""

    IMMEDIATE = "immediate"  # an alert mail now
    BURST = "burst"  # flood limit reached: one "burst" mail now, the rest folds into the digest
    FOLDED = "folded"  # flood limit reached and the burst mail already went: digest only
    DIGEST = "digest"  # the route says digest-only
    SILENCED = "silenced"  # a [[silence]] matched: digest only
    IGNORE = "ignore"  # the route says ignore, or no route matched


MAILING: Final = frozenset({Action.IMMEDIATE, Action.BURST})


class Budget(enum.Enum):
    """The flood budgets one mail counts against (see stages/policy.py)."""

    HOST = "host"  # one recipient, one host, one kind of event
    FLEET = "fleet"  # one recipient, one kind of event, all hosts together


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The policy's verdict for one recipient (``decide`` returns one per recipient).

    ``recipient`` is None only for the single IGNORE decision of an event no route matched.
    ``reason`` is one human sentence, shown in the logs and in the mail.
    ``route`` is the 0-based index of the ``[[route]]`` that decided, -1 for none.
    ``sent`` is how many mails the recipient got within the flood window before this event,
    in the budget that decided (this host and kind; for a fleet BURST, this kind on all hosts).
    ``burst`` names the budget a BURST mail closes (``Budget.HOST`` or ``Budget.FLEET``).
    """

    action: Action
    reason: str
    recipient: str | None = None
    route: int = -1
    sent: int = 0
    burst: Budget | None = None


class FloodCount(msgspec.Struct, frozen=True, kw_only=True):
    """Mails one recipient got from one budget within the flood window (all workers)."""

    sent: int = 0
    burst_sent: bool = False


class PolicyState(msgspec.Struct, frozen=True, kw_only=True):
    """The snapshot ``decide`` needs besides the event: flood counts.

    ``hosts`` is keyed ``(recipient, flood_host(host), kind)``, ``fleet`` is keyed
    ``(recipient, kind)``; recipients lower-cased. The store fills in the keys of one event.
    """

    hosts: Mapping[tuple[str, str, str], FloodCount] = msgspec.field(default_factory=dict)
    fleet: Mapping[tuple[str, str], FloodCount] = msgspec.field(default_factory=dict)

    def count(self, recipient: str, host: str, kind: str) -> FloodCount:
        return self.hosts.get((recipient.lower(), flood_host(host), kind), _NO_MAIL)

    def fleet_count(self, recipient: str, kind: str) -> FloodCount:
        return self.fleet.get((recipient.lower(), kind), _NO_MAIL)


_NO_MAIL: Final = FloodCount()


def flood_host(host: str) -> str:
    """The host's flood-budget key: case-insensitive, as routing and identity compare
    host names, so ``WEB-1`` and ``Web-1`` cannot each open a budget of their own."""
    return host.lower()


In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)


class Stage(Protocol[In_contra, Out_co]):
    """A pipeline stage: one typed object in, one out; failures raise schemas.errors."""

    def __call__(self, item: In_contra, /) -> Out_co: ...


def delivery_key(event: LoginEvent, decision: Decision) -> str:
    """The delivery-log key of one mail: at most one mail per event and recipient.

    Alert and burst mails share it on purpose: an event that got its alert, then was
    redelivered when its own mail had pushed the count to ``flood_max``, would otherwise
    decide BURST and send a second, spurious mail.

    Raises:
        ValueError: the decision has no recipient (it sends no mail).
    """
    if decision.recipient is None:
        raise ValueError("a decision without recipient sends no mail")
    return f"alert:{event.id_hex}:{decision.recipient.lower()}"


def utc(moment: datetime) -> datetime:
    """Reject naive datetimes early: every time in loginwatch is timezone-aware."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; pass an aware one (UTC)")
    return moment
