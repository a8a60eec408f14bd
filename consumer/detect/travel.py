"""Impossible travel: a user's successive logins, on any hosts, too far apart for the time.

``impossible`` compares the previous login's place (``Spot``: GeoIP City coordinates with
the database's accuracy radius) with this one's. It does not cry wolf:

- the same /24 (IPv4) or /64 (IPv6): one network, whatever the database says of it;
- each place may be anywhere within its accuracy radius, so the distance that counts is
  the distance less both radii (a country-level guess, radius 1000 km, is never "far");
- a distance under ``NEAR_KM`` after the radii is no travel at all;
- a speed at or under ``max_kmh`` (``[enrich] max_kmh``, 900: an airliner) is possible.

Logins at the same instant count as one second apart (a finite speed to report); their
order does not matter (a spool drained late delivers the older one second).
"""

from __future__ import annotations

import math
from typing import Final

from consumer.core.detections import Spot, Travel

EARTH_KM: Final = 6371.0088  # the mean radius
NEAR_KM: Final = 50.0  # closer than this (after the radii): the same metro area
MIN_SECONDS: Final = 1.0


def distance_km(a: Spot, b: Spot) -> float:
    """The great-circle distance between two places (haversine)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def impossible(before: Spot | None, after: Spot, *, max_kmh: float) -> Travel | None:
    """The travel from ``before`` to ``after`` when no traveller makes it; None when it is
    possible, or nothing can be said (no previous place, the same network)."""
    if before is None:
        return None
    if before.network and before.network == after.network:
        return None
    km = distance_km(before, after)
    apart = max(0.0, km - before.radius - after.radius)
    if apart < NEAR_KM:
        return None
    hours = max(abs((after.at - before.at).total_seconds()), MIN_SECONDS) / 3600
    kmh = apart / hours
    if kmh <= max_kmh:
        return None
    return Travel(before=before, after=after, km=km, kmh=kmh)
