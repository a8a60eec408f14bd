"""A silence (or an ack) and the pure matcher every decision about an event asks.

One ``Rule`` type serves both origins: ``[[silence]]`` from the config (``from_config``:
listed with its origin, never expired from the CLI) and silences and acks from the store.
A rule covers an event for a recipient when it is in force at ``now`` and every matcher
it has matches: host globs (case-insensitive), user, kind and PAM service globs, source
networks, SSH key fingerprints (exact), and ``to`` (the recipients it is limited to). An
empty matcher matches everything; a rule always has at least one (the config and
``table.add`` check).

An ack is a rule scoped to one alert's subject: that host, that user, that source, as
literal text (``literal``): a host named ``db-*`` acks that one host, never every ``db-``
host. Matching is pure (``now`` is passed in) and reads the event's text only as data.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from typing import Final

import msgspec

from consumer.core.routing import fingerprint_matches, globs_match, source_matches
from schemas.config import Silence
from schemas.event import LoginEvent

SILENCE: Final = "silence"
ACK: Final = "ack"
CONFIG: Final = "config"
STORE: Final = "store"
MATCHERS: Final = ("hosts", "users", "kinds", "sources", "fingerprints", "services")


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """One silence or ack. ``created_by``, ``comment`` and the matchers may hold hostile
    text (an ack copies the alert's host and user): shown only made visible."""

    id: str
    kind: str = SILENCE  # SILENCE or ACK
    origin: str = STORE  # CONFIG or STORE
    hosts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # PAM services (globs): sshd, sudo, su, login
    to: tuple[str, ...] = ()
    starts: datetime
    ends: datetime
    comment: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    expired_at: datetime | None = None
    expired_by: str = ""
    event_id: str = ""  # an ack: the alert it acknowledged

    @property
    def until(self) -> datetime:
        """When it stops: its end, or when someone expired it, whichever came first."""
        if self.expired_at is not None and self.expired_at < self.ends:
            return self.expired_at
        return self.ends

    def in_force(self, now: datetime) -> bool:
        return self.starts <= now < self.until

    def matchers(self) -> dict[str, tuple[str, ...]]:
        """The matchers it has, by name (the empty ones left out)."""
        return {name: getattr(self, name) for name in MATCHERS if getattr(self, name)}


def covers(rule: Rule, event: LoginEvent, recipient: str, now: datetime) -> bool:
    """Whether ``rule`` keeps ``event`` out of ``recipient``'s inbox at ``now``."""
    if not rule.in_force(now):
        return False
    if rule.to and recipient.lower() not in (r.lower() for r in rule.to):
        return False
    return (
        globs_match(rule.hosts, event.host.lower(), fold=True)
        and globs_match(rule.users, event.user)
        and globs_match(rule.kinds, event.kind)
        and source_matches(rule.sources, event.client_ip)
        and fingerprint_matches(rule.fingerprints, event.fingerprint)
        and globs_match(rule.services, event.service)
    )


def first_match(
    rules: Iterable[Rule], event: LoginEvent, recipient: str, now: datetime
) -> Rule | None:
    """The first rule that covers the event for ``recipient`` at ``now``, or None."""
    return next((rule for rule in rules if covers(rule, event, recipient, now)), None)


def from_config(index: int, silence: Silence) -> Rule:
    """``[[silence]]`` number ``index`` (0-based) as a rule: in force from the start of
    time until its ``until``; listed as ``config:N`` (1-based, as an operator counts)."""
    return Rule(id=f"config:{index + 1}", kind=SILENCE, origin=CONFIG, hosts=silence.hosts,
                users=silence.users, kinds=silence.kinds, sources=silence.sources,
                fingerprints=silence.fingerprints, services=silence.services, to=silence.to,
                starts=_EPOCH, ends=silence.until, comment=silence.comment,
                created_by="config file")  # fmt: skip


def literal(text: str) -> str:
    """A glob that matches exactly ``text``: ``*``, ``?`` and ``[`` each in brackets."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def host_network(address: str) -> str:
    """The one-address network of ``address`` (``192.0.2.7/32``), or "" for no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    return f"{ip}/{ip.max_prefixlen}"


def problem(rule: Rule) -> str | None:
    """Why ``rule`` cannot be stored (None: it can): no matcher, a bad network, an end
    not after its start."""
    if not rule.matchers():
        return (
            "a silence needs at least one of hosts, users, kinds, sources, fingerprints, services"
        )
    for source in rule.sources:
        try:
            ipaddress.ip_network(source, strict=False)
        except ValueError:
            return f"{source!r} is no network (192.0.2.0/24, 2001:db8::/32, or one address)"
    if rule.ends <= rule.starts:
        return "its end must come after its start"
    return None


_EPOCH: Final = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
