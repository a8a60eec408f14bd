"""Each user's last login with GeoIP coordinates, for impossible travel (``user_place``).

One row per user: the pipeline reads the rows of its logins' users in the batch's first
round trip (``read_statement``, ``spots_of``) and writes their places in the same round
trip after the reads (``write_statement``), a later login replacing an earlier one only
when it is newer by the host's clock. A host writes rows under its first-seen quota
(``consumer/store/quota.py``), so one that invents users cannot grow the table without
bound; rows go after ``[store] keep`` (``retention``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.detections import Spot
from consumer.store.backends import Row, Statement
from consumer.store.text import sql_text

_COLUMNS: Final = "latitude, longitude, radius, at, host, address, network, place"
_WRITE_HEAD: Final = """
INSERT INTO user_place
    (username, latitude, longitude, radius, at, host, address, network, place, seen_at)
VALUES"""
_WRITE_TAIL: Final = """ON CONFLICT (username) DO UPDATE SET
    latitude = excluded.latitude, longitude = excluded.longitude, radius = excluded.radius,
    at = excluded.at, host = excluded.host, address = excluded.address,
    network = excluded.network, place = excluded.place, seen_at = excluded.seen_at
WHERE excluded.at >= user_place.at
"""


def read_statement(users: Sequence[str]) -> Statement:
    """The places of ``users`` (one statement for a batch): rows of ``spots_of``."""
    marks = ", ".join(["?"] * len(users))
    sql = f"SELECT username, {_COLUMNS} FROM user_place WHERE username IN ({marks})"  # noqa: S608
    return sql, [sql_text(u) for u in users]


def spots_of(rows: Sequence[Row]) -> dict[str, Spot]:
    """The places ``read_statement`` read, by (stored) user name."""
    found = {}
    for user, lat, lon, radius, at, host, address, network, place in rows:
        found[str(user)] = Spot(
            latitude=float(str(lat)), longitude=float(str(lon)), radius=float(str(radius)),
            at=datetime.fromtimestamp(float(str(at)), UTC), host=str(host),
            address=str(address), network=str(network), place=str(place))  # fmt: skip
    return found


def write_statement(spots: Sequence[tuple[str, Spot]], now: datetime) -> Statement:
    """One upsert of the users' places, the latest of each user (a row may be named once
    per statement on PostgreSQL); a place older than the stored one is left out."""
    latest: dict[str, Spot] = {}
    for user, spot in spots:
        if user not in latest or spot.at >= latest[user].at:
            latest[user] = spot
    params: list[object] = []
    for user, spot in latest.items():
        params += [sql_text(user), spot.latitude, spot.longitude, spot.radius,
                   utc(spot.at).timestamp(), sql_text(spot.host), sql_text(spot.address),
                   sql_text(spot.network), sql_text(spot.place), utc(now).timestamp()]  # fmt: skip
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(latest))
    return f"{_WRITE_HEAD} {rows}\n{_WRITE_TAIL}", params
