"""First-seen: the SQL that records (or only reads) one event's sources, per host and fleet-wide.

``Sighting`` is one event's question (``Store.observe`` says what it means); its
``asks`` go into one transaction, with other events' (``observe``), and ``verdict`` reads
each scope's answer from their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def asks(self) -> list[list[_Ask]]:
        """Per scope, the statements that record it (or, ``record=False``, only read it);
        the last one's rows decide (``verdict``)."""
        name, where = sql_text(self.user), self._where()
        stamp = utc(self.now).timestamp()
        made: list[list[_Ask]] = []
        for scope, value in self.scopes():
            key = (name, scope, value)
            if not self.record and where is None:
                made.append([_Ask(_FLEET, key, (_SEEN, key))])
            elif not self.record:
                made.append([_Ask(_HOST, key, (_SEEN_HOST, (*key, where, *key, where,
                                                            self.vouchers)))])  # fmt: skip
            else:
                asks = [_Ask(_FLEET, key, (_OBSERVE, (*key, self.event_id, stamp, stamp)))]
                if where is not None:
                    asks.append(_Ask(_HOST, key,
                                     (_OBSERVE_HOST, (*key, where, self.event_id, self.vouchers,
                                                      *key, where, self.vouchers, stamp, stamp,
                                                      int(self.votes)))))  # fmt: skip
                made.append(asks)
        return made

    def verdict(self, rows: list[Row]) -> bool:
        """Whether a scope is new, from the rows of its deciding statement."""
        if not self.record and self._where() is None:
            return not rows or rows[0][0] == self.event_id
        if not self.record:
            here, others = rows[0]
            return not here and others < self.vouchers
        if self._where() is None:
            return bool(rows) and rows[0][0] == self.event_id
        return bool(rows) and rows[0][0] == self.event_id and bool(rows[0][1])

    def _where(self) -> str | None:
        return None if self.host is None else sql_text(flood_host(self.host))


_FLEET, _HOST = 0, 1  # the table a statement touches: first_seen, first_seen_host


@dataclass(frozen=True)
class _Ask:
    table: int
    key: tuple[str, str, str]  # username, scope, value
    statement: Statement


def observe(
    db: Database,
    sightings: Sequence[Sighting],
    *,
    before: Sequence[Statement] = (),
    reads: Sequence[Statement] = (),
) -> tuple[list[FirstSeen], list[list[Row]]]:
    """``before``, the sightings' statements, then ``reads``, in one transaction (one round
    trip on PostgreSQL): each sighting's verdict, and the rows of ``reads``.

    The sightings' statements run grouped by table and source (user, scope, value), each
    group in the sightings' order: a statement reads and writes only its own table's rows
    of its own source, so every one returns what it would have returned in the sightings'
    order, and concurrent batches lock a table's rows in one order (no deadlock between
    two workers' batches, but for one source reported to both from two hosts at once; a
    deadlock fails one batch, which the pipeline then takes one event at a time). Runs of
    one statement go to the server together (``executemany``).
    """
    asked = [sighting.asks() for sighting in sightings]
    flat = [ask for scopes in asked for asks in scopes for ask in asks]
    if not before and not reads and not flat:
        return [FirstSeen() for _ in sightings], []
    order = sorted(range(len(flat)), key=lambda n: (flat[n].table, flat[n].key))
    rows = db.batch([*before, *(flat[n].statement for n in order), *reads])
    mine = rows[len(before) : len(before) + len(flat)]
    answered: dict[int, list[Row]] = dict(zip(order, mine, strict=True))
    seen, n = [], 0
    for sighting, scopes in zip(sightings, asked, strict=True):
        verdicts = {}
        for (scope, _), asks in zip(sighting.scopes(), scopes, strict=True):
            n += len(asks)
            verdicts[scope] = sighting.verdict(answered[n - 1])
        seen.append(FirstSeen(**verdicts))
    return seen, rows[len(before) + len(flat) :]
