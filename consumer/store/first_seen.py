"""First-seen: the SQL that records (or only reads) one event's sources, per host and fleet-wide.

``Sighting`` is one event's question (``Store.observe`` says what it means); its
``asks`` go into one transaction, with other events' (``observe``), and ``verdict`` reads
each scope's answer from their rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.enriched import FirstSeen
from consumer.store.backends import Database, Row, Statement
from consumer.store.quota import HostQuota, day_of, quota_host
from consumer.store.text import sql_text


@dataclass(frozen=True)
class _Rows:
    """An upsert of several rows in one statement; it returns each row's source (user,
    scope, value) first, then what one row returns. SQLite: ``head``, ``row`` per row,
    ``tail`` (``values`` makes a row's parameters from its columns); PostgreSQL:
    ``unnest``, one array per column (a statement whose text does not change with the
    number of rows, so the server and psycopg prepare and parse it once), then ``tail``."""

    head: str
    row: str
    tail: str
    unnest: str
    limit: int | None  # the column whose largest value is the statement's LIMIT
    values: Callable[[tuple[object, ...]], tuple[object, ...]] = lambda columns: columns

    def statement(self, rows: list[tuple[object, ...]], dialect: str) -> Statement:
        if dialect != "postgres":
            sql = f"{self.head}\n{', '.join([self.row] * len(rows))}\n{self.tail}"
            return sql, [p for columns in rows for p in self.values(columns)]
        arrays = [list(column) for column in zip(*rows, strict=True)]
        limit = [max(int(str(r[self.limit])) for r in rows)] if self.limit is not None else []
        return f"{self.unnest}\n{self.tail}", [*limit, *arrays]


_OBSERVE: Final = _Rows(
    "INSERT INTO first_seen (username, scope, value, event_id, first_at, last_at) VALUES",
    "(?, ?, ?, ?, ?, ?)",
    """ON CONFLICT (username, scope, value) DO UPDATE SET
    last_at = CASE WHEN excluded.last_at > first_seen.last_at
                   THEN excluded.last_at ELSE first_seen.last_at END,
    logins = first_seen.logins + 1
RETURNING username, scope, value, event_id""",
    """INSERT INTO first_seen (username, scope, value, event_id, first_at, last_at)
SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::float8[], ?::float8[])""",
    None,
)


_SEEN: Final = "SELECT event_id FROM first_seen WHERE username = ? AND scope = ? AND value = ?"

# The host's row, created with its verdict (novel: fewer than the given number of *other*
# hosts reported this user's login from this source, counted up to that number) unless it
# exists; returns the row's first event and verdict.
# Parameters: user, scope, value, host, event_id; user, scope, value, host, limit, limit;
# first_at, last_at, votes (0: a relay's report, which counts for its host only).
_OBSERVE_HOST: Final = _Rows(
    """INSERT INTO first_seen_host
    (username, scope, value, host, event_id, novel, first_at, last_at, votes) VALUES""",
    """(?, ?, ?, ?, ?, (SELECT CASE WHEN COUNT(*) < ? THEN 1 ELSE 0 END FROM (
    SELECT 1 FROM first_seen_host
    WHERE username = ? AND scope = ? AND value = ? AND host <> ? AND votes = 1 LIMIT ?
) t), ?, ?, ?)""",
    """ON CONFLICT (username, scope, value, host) DO UPDATE SET
    last_at = CASE WHEN excluded.last_at > first_seen_host.last_at
                   THEN excluded.last_at ELSE first_seen_host.last_at END,
    logins = first_seen_host.logins + 1
RETURNING username, scope, value, event_id, novel""",
    # One LIMIT for all rows (a parameter: LIMIT takes no column); the rows' vouchers are
    # one config's, and COUNT(*) < vouchers reads the same below any larger limit.
    """INSERT INTO first_seen_host
    (username, scope, value, host, event_id, novel, first_at, last_at, votes)
SELECT r.u, r.s, r.v, r.h, r.e, (SELECT CASE WHEN COUNT(*) < r.lim THEN 1 ELSE 0 END FROM (
    SELECT 1 FROM first_seen_host f
    WHERE f.username = r.u AND f.scope = r.s AND f.value = r.v AND f.host <> r.h
      AND f.votes = 1 LIMIT ?
) t), r.fa, r.la, r.vo
FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::int[], ?::float8[],
            ?::float8[], ?::int[]) AS r(u, s, v, h, e, lim, fa, la, vo)""",
    5,
    # user, scope, value, host, event_id, vouchers, first_at, last_at, votes
    lambda c: (*c[:6], *c[:4], c[5], *c[6:]),
)
# Rows per upsert statement: far below SQLite's 32,766 parameters (14 per host row).
_MAX_ROWS: Final = 500

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
    key: str | None = None  # the login's SSH key fingerprint (SHA256:…)
    # A hop's own source (the jump host's address, as the login's host saw it): recorded
    # and asked as an address too, and the address is new when either is. ``address`` is
    # then the original client, which only the jump host's events vouch for: a host that
    # lies about its addresses or its logins cannot make a new source read as a known one.
    via: str | None = None

    def scopes(self) -> list[tuple[str, str]]:
        pairs = (("address", self.address), ("address", self.via), ("network", self.network),
                 ("country", self.country), ("key", self.key))  # fmt: skip
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
                made.append([_Ask(_FLEET, key, key, read=_SEEN)])
            elif not self.record:
                made.append([_Ask(_HOST, key, (*key, where, *key, where, self.vouchers),
                                  read=_SEEN_HOST)])  # fmt: skip
            else:
                asks = [_Ask(_FLEET, key, (*key, self.event_id, stamp, stamp), rows=_OBSERVE)]
                if where is not None:
                    asks.append(_Ask(_HOST, key,
                                     (*key, where, self.event_id, self.vouchers, stamp, stamp,
                                      int(self.votes)),
                                     rows=_OBSERVE_HOST))  # fmt: skip
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

    def creates(self, rows: list[Row]) -> bool:
        """Whether the deciding statement's rows say this sighting made its host's row
        (a row's first event is the one that made it; a redelivery counts again)."""
        return (
            self.record
            and self._where() is not None
            and bool(rows)
            and (rows[0][0] == self.event_id)
        )

    def _where(self) -> str | None:
        return None if self.host is None else quota_host(self.host)


_FLEET, _HOST = 0, 1  # the table a statement touches: first_seen, first_seen_host


@dataclass(frozen=True)
class _Ask:
    """One statement of a sighting: a read (``read``), or one row of an upsert (``rows``)."""

    table: int
    key: tuple[str, str, str]  # username, scope, value
    params: tuple[object, ...]
    read: str | None = None
    rows: _Rows | None = None


def observe(
    db: Database,
    sightings: Sequence[Sighting],
    *,
    before: Sequence[Statement] = (),
    reads: Sequence[Statement] = (),
    quota: HostQuota | None = None,
) -> tuple[list[FirstSeen], list[list[Row]]]:
    """``before``, the sightings' statements, then ``reads``, in one transaction (one round
    trip on PostgreSQL): each sighting's verdict, and the rows of ``reads``.

    With ``quota`` (``consumer/store/quota.py``), a host past its day's budget of new rows
    records nothing: its sightings are only read (``record=False``) and counted as over;
    the rows the others create are counted, and the counts written with the round trip.

    A sighting's statement reads and writes only its own table's rows of its own source
    (user, scope, value), so the statements of one source must run in the sightings'
    order, and those of different sources in any. They run in layers: layer *n* holds the
    *n*-th statement of each source, one upsert per table and layer for all its rows (one
    source at most once in it). So every statement returns what it would have returned
    alone, in the sightings' order, and a batch costs a few statements however many
    sightings it has. Rows are locked in one order (source, then layer), so two workers'
    batches cannot deadlock but for one source reported to both from two hosts at once; a
    deadlock fails one batch, which the pipeline then takes one event at a time.
    """
    day = day_of(sightings[0].now) if sightings else 0
    if quota is not None and sightings:
        sightings = _gated(sightings, quota, day)
        counted, read = quota.statements(day)
        before, reads = [*counted, *before], [*reads, read]
    asked = [sighting.asks() for sighting in sightings]
    flat = [ask for scopes in asked for asks in scopes for ask in asks]
    if not before and not reads and not flat:
        return [FirstSeen() for _ in sightings], []
    statements, answers = _layers(flat, db.dialect)
    rows = db.batch([*before, *statements, *reads])
    answered: dict[int, list[Row]] = {}
    for answer, got in zip(answers, rows[len(before) : len(before) + len(statements)],
                           strict=True):  # fmt: skip
        if isinstance(answer, int):
            answered[answer] = got
        else:
            by_source = {tuple(row[:3]): list(row[3:]) for row in got}
            answered.update((n, [tuple(by_source[flat[n].key])]) for n in answer)
    seen, n = [], 0
    created: dict[str, int] = {}
    for sighting, scopes in zip(sightings, asked, strict=True):
        verdicts: dict[str, bool] = {}
        for (scope, _), asks in zip(sighting.scopes(), scopes, strict=True):
            n += len(asks)
            verdicts[scope] = verdicts.get(scope, False) or sighting.verdict(answered[n - 1])
            if sighting.creates(answered[n - 1]):
                where = sighting._where() or ""
                created[where] = created.get(where, 0) + 1
        seen.append(FirstSeen(**verdicts))
    read_rows = rows[len(before) + len(statements) :]
    if quota is not None and sightings:
        quota.load(read_rows.pop(), day)
        for host, count in created.items():
            quota.add(host, day, stored=count)
    return seen, read_rows


def _gated(sightings: Sequence[Sighting], quota: HostQuota, day: int) -> list[Sighting]:
    """The sightings, those of a host past its budget only read (and counted over)."""
    gated = []
    for sighting in sightings:
        where = sighting._where()
        if sighting.record and where is not None and quota.full(where, day):
            quota.add(where, day, over=len(sighting.scopes()))
            gated.append(replace(sighting, record=False))
        else:
            gated.append(sighting)
    return gated


def _layers(flat: list[_Ask], dialect: str) -> tuple[list[Statement], list[int | list[int]]]:
    """The statements for ``flat``, and what each answers: one ask (a read), or the asks
    whose rows an upsert holds."""
    sources: dict[tuple[int, tuple[str, str, str]], list[int]] = {}
    for n, ask in enumerate(flat):
        sources.setdefault((ask.table, ask.key), []).append(n)
    layers: list[list[int]] = []
    for source in sorted(sources):
        for depth, n in enumerate(sources[source]):
            if depth == len(layers):
                layers.append([])
            layers[depth].append(n)
    statements: list[Statement] = []
    answers: list[int | list[int]] = []
    for layer in layers:
        for n in layer:
            if (read := flat[n].read) is not None:
                statements.append((read, flat[n].params))
                answers.append(n)
        for template in (_OBSERVE, _OBSERVE_HOST):
            mine = [n for n in layer if flat[n].rows is template]
            for start in range(0, len(mine), _MAX_ROWS):
                chunk = mine[start : start + _MAX_ROWS]
                statements.append(template.statement([flat[n].params for n in chunk], dialect))
                answers.append(chunk)
    return statements, answers
