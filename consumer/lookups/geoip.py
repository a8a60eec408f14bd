"""GeoIP country and city from a local MaxMind database (GeoLite2/GeoIP2 City or Country).

The database is the operator's, but its text ends up in mail headers: a country code is two
letters A-Z, and a name is at most MAX_GEO_NAME characters without control, format (bidi)
or unassigned characters; anything else reads as unknown.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final, NamedTuple

import maxminddb

from schemas.errors import ConfigError


class Place(NamedTuple):
    country: str | None = None  # ISO 3166 code
    country_name: str | None = None
    city: str | None = None
    # A City database's ``location``: degrees, and the accuracy radius in km (0: none given).
    latitude: float | None = None
    longitude: float | None = None
    radius: float = 0.0


NOWHERE = Place()
MAX_GEO_NAME: Final = 100
_ISO: Final = re.compile(r"[A-Z]{2}")


class GeoIp:
    """Lookups in one .mmdb file, memory-mapped; thread-safe (the reader is).

    Raises (from the constructor):
        ConfigError: the file is missing or not a MaxMind database.
    """

    def __init__(self, path: str) -> None:
        try:
            self.reader = maxminddb.open_database(path)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise ConfigError(f"$.enrich.geoip_db: cannot open {path}: {exc}") from None

    def lookup(self, address: str) -> Place:
        """The place of ``address``; NOWHERE when unknown or not an address."""
        try:
            record = self.reader.get(address)
        except (ValueError, maxminddb.InvalidDatabaseError):
            return NOWHERE
        if not isinstance(record, dict):
            return NOWHERE
        country = _mapping(record.get("country")) or _mapping(record.get("registered_country"))
        location = _mapping(record.get("location"))
        latitude = _degrees(location.get("latitude"), 90)
        longitude = _degrees(location.get("longitude"), 180)
        known = latitude is not None and longitude is not None
        return Place(
            country=_iso(country.get("iso_code")),
            country_name=_name(country),
            city=_name(_mapping(record.get("city"))),
            latitude=latitude if known else None,
            longitude=longitude if known else None,
            radius=_radius(location.get("accuracy_radius")) if known else 0.0,
        )

    def close(self) -> None:
        self.reader.close()


def _degrees(value: Any, bound: float) -> float | None:
    """A latitude (``bound`` 90) or longitude (180) the database gave, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    degrees = float(value)
    return degrees if -bound <= degrees <= bound else None


def _radius(value: Any) -> float:
    """The accuracy radius (km): 0 when missing or absurd (more than half the Earth's
    circumference reads as "anywhere", 20,000 km)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0.0
    return min(float(value), 20_000.0)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(section: dict[str, Any]) -> str | None:
    return _text(_mapping(section.get("names")).get("en"))


def _iso(value: Any) -> str | None:
    return value if isinstance(value, str) and _ISO.fullmatch(value) else None


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > MAX_GEO_NAME:
        return None
    if any(unicodedata.category(char).startswith("C") for char in value):
        return None
    return value
