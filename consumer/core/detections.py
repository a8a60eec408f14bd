"""What the detections found about one event (``consumer/detect/`` decides them, purely):
a brute force before a login, impossible travel, an escalation tied to its login, a hop
through a jump host. Frozen values the enrich stage puts on ``Enriched``; every text in
them that came from a host or a GeoIP database is shown made visible by whoever prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec


class Brute(msgspec.Struct, frozen=True, kw_only=True):
    """Failed logins from a login's source within ``[detect] brute_window`` before it:
    on this host, and on every host together (``fleet`` >= ``host``)."""

    host: int
    fleet: int
    window: float  # seconds


class Spot(msgspec.Struct, frozen=True, kw_only=True):
    """Where and when one login of a user was: GeoIP City's coordinates and accuracy
    radius (km), the login's time (the host's word), host, address and its network."""

    latitude: float
    longitude: float
    radius: float
    at: datetime
    host: str = ""
    address: str = ""
    network: str = ""
    place: str = ""  # "Berlin, DE"; "" when the database has no names


class Travel(msgspec.Struct, frozen=True, kw_only=True):
    """Two successive logins of a user too far apart for the time between them."""

    before: Spot
    after: Spot
    km: float  # the distance between the two places, radii not subtracted
    kmh: float  # the speed implied, after the radii were allowed for


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """The login a later event of the same session began with (``Escalation``, logouts)."""

    event_id: str
    user: str
    host: str
    service: str
    source: str
    fingerprint: str
    at: datetime
    linked_by: str  # "audit session 4", "sshd process 1234"


class Escalation(msgspec.Struct, frozen=True, kw_only=True):
    """A su or sudo to another user (``target``), and the login of its session, if known."""

    target: str
    via: str  # su, sudo
    origin: Origin | None = None


class Hop(msgspec.Struct, frozen=True, kw_only=True):
    """A login to this host from a jump host's address, within ``[detect] hop_window`` of
    the same user's login there: ``chain`` runs from the original client to this host."""

    client: str  # the original client's address
    chain: tuple[str, ...]  # ("198.51.100.7", "bastion", "db-1")
    via_event: str  # the jump host's login event


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A logout (from wtmp or wtmpdb): how long the session lasted (what ``last`` shows,
    None when the record lacks its start), when it began, and its login when found."""

    seconds: float | None
    login_at: datetime | None = None
    origin: Origin | None = None


@dataclass(frozen=True)
class HostState:
    """What the hosts table knows of one host (consumer/store/hosts.py)."""

    name: str
    last_report: datetime  # its last event or heartbeat, whichever came later
    goodbye_at: datetime | None = None  # it said goodbye (cleared by a later report)
    goodbye_why: str = ""
    retired: bool = False
    alerted: bool = False  # the quiet alert for this silence went out
