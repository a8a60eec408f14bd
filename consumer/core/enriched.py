"""What the central side learned about an event's source (the enrich stage's output)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from consumer.core.detections import Brute, Escalation, Hop, Session, Travel
from schemas.event import LoginEvent


class FirstSeen(msgspec.Struct, frozen=True, kw_only=True):
    """Whether this is the user's first login from this address / network / country.

    Each is False when the event has nothing to compare (no client address, no country).
    """

    address: bool = False
    network: bool = False
    country: bool = False
    # The SSH key (its SHA-256) is one this user never logged in with (on this host, or
    # fleet-wide under the same voting rule as sources).
    key: bool = False

    @property
    def any(self) -> bool:
        """A new source (the key is not a source: ``key``)."""
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
    # What the user who logged in answered to "was this you?" about this login (``yes``,
    # ``no``), or ``no`` when they disowned an earlier login from this source to this host
    # (``consumer/questions/``); "" when nobody was asked or nobody answered yet.
    answer: str = ""
    # "likely-scanner" when a yes and a no came within seconds of each other.
    answer_flag: str = ""
    # GeoIP City's coordinates of the source and their accuracy radius (km); None: unknown.
    latitude: float | None = None
    longitude: float | None = None
    radius: float = 0.0
    # What the detections found (consumer/detect/): failed passwords from this source just
    # before this login; a speed no traveller makes since the user's previous login; a su
    # or sudo, tied to its session's login; a login through a jump host; a logout's session.
    brute: Brute | None = None
    travel: Travel | None = None
    escalation: Escalation | None = None
    hop: Hop | None = None
    session: Session | None = None
