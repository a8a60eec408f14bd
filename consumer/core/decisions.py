"""The policy's decisions: what happens for each recipient of one event, and the flood
counts it decides on (``stages/policy.py`` decides, ``store`` counts, ``pipeline`` acts)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import msgspec

from schemas.event import LoginEvent


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


def sent_key(event: LoginEvent, decision: Decision) -> str:
    """The sent-log key of one mail: at most one mail per event and recipient.

    Alert and burst mails share it on purpose: an event that got its alert, then was
    redelivered when its own mail had pushed the count to ``flood_max``, would otherwise
    decide BURST and send a second, spurious mail.

    Raises:
        ValueError: the decision has no recipient (it sends no mail).
    """
    if decision.recipient is None:
        raise ValueError("a decision without recipient sends no mail")
    return f"alert:{event.id_hex}:{decision.recipient.lower()}"
