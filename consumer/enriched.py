"""What the central side learned about an event's source (the enrich stage's output)."""

from __future__ import annotations

from datetime import datetime

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
