"""First-seen: the SQL that records (or only reads) one event's sources, per host and fleet-wide.

``Sighting`` is one event's question (``Store.observe`` says what it means); its
``statements`` go into one transaction, with other events' (``Store.observe_all``), and
``first_seen`` reads the verdict from their rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from consumer.clock import utc
from consumer.decisions import flood_host
from consumer.enriched import FirstSeen
from consumer.store.backends import Database, Row, Statement
from consumer.store.text import sql_text

_OBSERVE: Final = """
INSERT INTO first_seen (username, scope, value, event_id, first_at, last_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (username, scope, value) DO UPDATE SET
    last_at = CASE WHEN excluded.last_at > first_seen.last_at
                   THEN excluded.last_at ELSE first_seen.last_at END,
    logins = first_seen.logins + 1
RETURNING event_id
"""


_SEEN: Final = "SELECT event_id FROM first_seen WHERE username = ? AND scope = ? AND value = ?"

# The host's row, created with its verdict (novel: fewer than the given number of *other*
# hosts reported this user's login from this source, counted up to that number) unless it
# exists; returns the row's first event and verdict.
# Parameters: user, scope, value, host, event_id; user, scope, value, host, limit, limit;
# first_at, last_at, votes (0: a relay's report, which counts for its host only).
_OBSERVE_HOST: Final = """
INSERT INTO first_seen_host
    (username, scope, value, host, event_id, novel, first_at, last_at, votes)
VALUES (?, ?, ?, ?, ?, (SELECT CASE WHEN COUNT(*) < ? THEN 1 ELSE 0 END FROM (
    SELECT 1 FROM first_seen_host
    WHERE username = ? AND scope = ? AND value = ? AND host <> ? AND votes = 1 LIMIT ?
) t), ?, ?, ?)
ON CONFLICT (username, scope, value, host) DO UPDATE SET
    last_at = CASE WHEN excluded.last_at > first_seen_host.last_at
                   THEN excluded.last_at ELSE first_seen_host.last_at END,
    logins = first_seen_host.logins + 1
RETURNING event_id, novel
"""

# Whether this host has a row, and how many other hosts do (up to the limit).
# Parameters: user, scope, value, host; user, scope, value, host, limit.
_SEEN_HOST: Final = """
SELECT (SELECT COUNT(*) FROM first_seen_host
        WHERE username = ? AND scope = ? AND value = ? AND host = ?),
       (SELECT COUNT(*) FROM (
            SELECT 1 FROM first_seen_host
            WHERE username = ? AND scope = ? AND value = ? AND host <> ? AND votes = 1 LIMIT ?
        ) t)
"""


@dataclass(frozen=True)
class Sighting:
    """One event's source as ``Store.observe`` takes it (see there); ``now``: when it came."""

    user: str
    event_id: str
    now: datetime
    address: str | None = None
    network: str | None = None
    country: str | None = None
    record: bool = True
    host: str | None = None
    vouchers: int = 2
    votes: bool = True

    def scopes(self) -> list[tuple[str, str]]:
        pairs = (("address", self.address), ("network", self.network), ("country", self.country))
        return [(scope, sql_text(value)) for scope, value in pairs if value]

    def statements(self) -> list[Statement]:
        """What records it (or, ``record=False``, only reads); ``first_seen`` reads the rows."""
        name, where = sql_text(self.user), self._where()
        stamp = utc(self.now).timestamp()
        made: list[Statement] = []
        # Scopes in one order (address, network, country): concurrent workers cannot deadlock.
        for scope, value in self.scopes():
            if not self.record and where is None:
                made.append((_SEEN, (name, scope, value)))
            elif not self.record:
                made.append((_SEEN_HOST, (name, scope, value, where, name, scope, value, where,
                                          self.vouchers)))  # fmt: skip
            else:
                made.append((_OBSERVE, (name, scope, value, self.event_id, stamp, stamp)))
                if where is not None:
                    made.append((_OBSERVE_HOST,
                                 (name, scope, value, where, self.event_id, self.vouchers,
                                  name, scope, value, where, self.vouchers, stamp, stamp,
                                  int(self.votes))))  # fmt: skip
        return made

    def first_seen(self, results: Iterator[list[Row]]) -> FirstSeen:
        """The verdict, from the rows of ``statements`` (taken from ``results`` in order)."""
        seen = {}
        for scope, _ in self.scopes():
            rows = next(results)
            if not self.record and self._where() is None:
                seen[scope] = not rows or rows[0][0] == self.event_id
            elif not self.record:
                here, others = rows[0]
                seen[scope] = not here and others < self.vouchers
            else:
                seen[scope] = bool(rows) and rows[0][0] == self.event_id
                if self._where() is not None:
                    rows = next(results)
                    seen[scope] = bool(rows) and rows[0][0] == self.event_id and bool(rows[0][1])
        return FirstSeen(**seen)

    def _where(self) -> str | None:
        return None if self.host is None else sql_text(flood_host(self.host))


def observe(
    db: Database,
    sightings: Sequence[Sighting],
    *,
    before: Sequence[Statement] = (),
    reads: Sequence[Statement] = (),
) -> tuple[list[FirstSeen], list[list[Row]]]:
    """``before``, the sightings' statements, then ``reads``, in one transaction (one round
    trip on PostgreSQL): each sighting's verdict, and the rows of ``reads``."""
    asked = [sighting.statements() for sighting in sightings]
    if not before and not reads and not any(asked):
        return [FirstSeen() for _ in sightings], []
    rows = db.batch([*before, *(s for each in asked for s in each), *reads])
    results = iter(rows[len(before) :])
    seen = [sighting.first_seen(results) for sighting in sightings]
    return seen, list(results)
