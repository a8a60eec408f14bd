"""The store's operations, the same SQL on SQLite and PostgreSQL.

Times are stored as Unix seconds (UTC). Every write is one atomic statement, so several
workers, on one machine (SQLite WAL) or several (PostgreSQL), can share a store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from consumer.clock import utc
from consumer.decisions import Action, Budget, Decision, FloodCount, PolicyState, flood_host
from consumer.enriched import FirstSeen
from consumer.store.backends import Database, connect
from consumer.store.migrations import MIGRATIONS, Migration, check
from consumer.store.text import sql_text
from schemas.errors import StoreError

# Serialises migrations of workers starting at once against one PostgreSQL database.
_PG_MIGRATION_LOCK: Final = 0x6C6F67696E77  # "loginw"
# Flood counts are kept per budget and FLOOD_SLOT seconds: a count reads at most
# window / FLOOD_SLOT rows per recipient and budget however much mail went out. A window
# starts at the slot holding its start, so a mail up to FLOOD_SLOT seconds older may count.
FLOOD_SLOT: Final = 10
# Flood counts older than this are deleted when a mail is noted (flood windows are shorter).
FLOOD_KEEP: Final = 7 * 86400.0

# One mail counts twice: in its host's budget ('host', host) and in the fleet's ('fleet', '').
_NOTE_MAIL: Final = """
INSERT INTO flood_budget (kind, scope, host, recipient, slot, sent, burst)
VALUES (?, ?, ?, ?, ?, 1, ?)
ON CONFLICT (kind, scope, host, recipient, slot) DO UPDATE SET
    sent = flood_budget.sent + 1,
    burst = CASE WHEN excluded.burst > flood_budget.burst
                 THEN excluded.burst ELSE flood_budget.burst END
"""

_FLOOD_STATE: Final = """
SELECT recipient, scope, SUM(sent), MAX(burst) FROM flood_budget
WHERE kind = ? AND slot >= ?
  AND ((scope = 'host' AND host = ?) OR (scope = 'fleet' AND host = ''))
GROUP BY recipient, scope
"""

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

_DECISION: Final = """
INSERT INTO decision_log (event_id, recipient, action, reason, decided_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (event_id, recipient) DO UPDATE SET
    action = excluded.action, reason = excluded.reason, decided_at = excluded.decided_at
"""
# What record_decisions keeps: the actions that took an event out of someone's inbox.
LOGGED_ACTIONS: Final = frozenset({Action.SILENCED, Action.FOLDED, Action.BURST})


class Store:
    """First-seen sources, the sent log and flood counters.

    Every method raises ``StoreError`` when the database fails.
    """

    def __init__(self, db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        self.db = db
        migrate(db, migrations)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def observe(
        self,
        user: str,
        *,
        address: str | None,
        network: str | None,
        country: str | None,
        event_id: str,
        now: datetime,
        record: bool = True,
        host: str | None = None,
        vouchers: int = 2,
        votes: bool = True,
    ) -> FirstSeen:
        """Whether ``user``'s login from each of these is new; records them.

        With ``host`` (the worker), a source is new unless this host saw the user log in
        from it before, or at least ``vouchers`` other hosts did: one compromised host that
        reports an address cannot make it familiar on the others. With ``votes=False`` (a
        relay's report: one relay may speak for many names) the row counts for this host
        only, never as one of the other hosts' votes. Without ``host`` (the
        digest scheduler), only the fleet-wide row is kept: new unless any login came from
        there before; the digest's first-seen list reads that row.

        Atomic (one transaction of upserts, safe between workers). Idempotent per
        ``event_id``: the event that created a row still reads as first-seen when it is
        redelivered. With ``record=False`` (failed logins) nothing is written: a stranger's
        failed password must not make a later real login from there look familiar.
        """
        stamp = utc(now).timestamp()
        scopes = [
            (s, sql_text(v))
            for s, v in (("address", address), ("network", network), ("country", country))
            if v
        ]
        if not scopes:
            return FirstSeen()
        name = sql_text(user)
        where = None if host is None else sql_text(flood_host(host))
        if not record:
            return FirstSeen(
                **{
                    s: self._unseen(name, s, v, event_id=event_id, host=where, vouchers=vouchers)
                    for s, v in scopes
                }
            )
        seen = {}
        # One transaction for all scopes: one commit (fsync) per event, and a consistent
        # lock order (address, network, country) so concurrent workers cannot deadlock.
        with self.db.transaction() as run:
            for scope, value in scopes:
                rows = run(_OBSERVE, (name, scope, value, event_id, stamp, stamp))
                seen[scope] = bool(rows) and rows[0][0] == event_id
                if where is not None:
                    rows = run(
                        _OBSERVE_HOST,
                        (name, scope, value, where, event_id, vouchers,
                         name, scope, value, where, vouchers, stamp, stamp, int(votes)),
                    )  # fmt: skip
                    seen[scope] = bool(rows) and rows[0][0] == event_id and bool(rows[0][1])
        return FirstSeen(**seen)

    def _unseen(
        self, user: str, scope: str, value: str, *, event_id: str, host: str | None, vouchers: int
    ) -> bool:
        if host is None:
            rows = self.db.execute(_SEEN, (user, scope, value))
            return not rows or rows[0][0] == event_id
        here, others = self.db.execute(
            _SEEN_HOST, (user, scope, value, host, user, scope, value, host, vouchers)
        )[0]
        return not here and others < vouchers

    def was_sent(self, key: str) -> bool:
        """True when the mail with this delivery key was accepted by the SMTP server before."""
        return bool(self.db.execute("SELECT 1 FROM delivery_log WHERE key = ?", (key,)))

    def record_sent(self, key: str, now: datetime) -> None:
        """Note that the SMTP server accepted this mail (idempotent)."""
        self.db.execute(
            "INSERT INTO delivery_log (key, delivered_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (key, utc(now).timestamp()),
        )

    def flood_state(self, now: datetime, window: float, *, host: str, kind: str) -> PolicyState:
        """The flood counts an event of ``kind`` on ``host`` is decided by: per recipient,
        its host budget and its kind's fleet budget, within ``window`` seconds before
        ``now`` (in FLOOD_SLOT steps: the slot holding the window's start counts whole)."""
        first = _slot(utc(now).timestamp() - window)
        key = flood_host(host)
        rows = self.db.execute(_FLOOD_STATE, (kind, first, sql_text(key)))
        hosts, fleet = {}, {}
        for recipient, scope, count, burst in rows:
            flood = FloodCount(sent=int(count), burst_sent=bool(burst))
            if scope == "host":
                hosts[(recipient, key, kind)] = flood
            else:
                fleet[(recipient, kind)] = flood
        return PolicyState(hosts=hosts, fleet=fleet)

    def note_mail(
        self, recipient: str, host: str, kind: str, now: datetime, *, burst: Budget | None = None
    ) -> None:
        """Count one mail to ``recipient`` about an event of ``kind`` on ``host`` in both its
        budgets (``burst``: the budget whose burst mail this is), pruning old counts."""
        stamp = utc(now).timestamp()
        slot, who = _slot(stamp), recipient.lower()
        with self.db.transaction() as run:
            run(_NOTE_MAIL, (kind, "host", sql_text(flood_host(host)), who, slot,
                             int(burst is Budget.HOST)))  # fmt: skip
            run(_NOTE_MAIL, (kind, "fleet", "", who, slot, int(burst is Budget.FLEET)))
            run("DELETE FROM flood_budget WHERE slot < ?", (_slot(stamp - FLOOD_KEEP),))

    def record_decisions(self, event_id: str, decisions: Iterable[Decision], now: datetime) -> None:
        """Log the decisions the digest must report (silenced, folded, burst); a later
        decision for the same event and recipient (a redelivery) replaces the earlier."""
        stamp = utc(now).timestamp()
        rows = [
            (event_id, d.recipient.lower(), d.action.value, d.reason, stamp)
            for d in decisions
            if d.recipient is not None and d.action in LOGGED_ACTIONS
        ]
        if not rows:
            return
        with self.db.transaction() as run:
            for row in rows:
                run(_DECISION, row)

    def prune(self, before: datetime) -> int:
        """Forget sent-log and decision-log entries older than ``before`` (``[store]
        keep``); how many sent-log entries went."""
        stamp = utc(before).timestamp()
        with self.db.transaction() as run:
            count = run("SELECT COUNT(*) FROM delivery_log WHERE delivered_at < ?", (stamp,))
            run("DELETE FROM delivery_log WHERE delivered_at < ?", (stamp,))
            run("DELETE FROM decision_log WHERE decided_at < ?", (stamp,))
        return int(count[0][0])

    def schema_version(self) -> int:
        rows = self.db.execute("SELECT MAX(version) FROM loginwatch_schema")
        return int(rows[0][0] or 0)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _slot(stamp: float) -> int:
    return int(stamp // FLOOD_SLOT)


def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    """Apply the migrations this database lacks, in one transaction.

    Raises:
        StoreError: the database fails, or its schema is newer than this program knows.
    """
    check(migrations)
    with db.transaction() as run:
        if db.dialect == "postgres":
            run("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
        run(
            "CREATE TABLE IF NOT EXISTS loginwatch_schema ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)",
            (),
        )
        done = {int(row[0]) for row in run("SELECT version FROM loginwatch_schema", ())}
        if done and max(done) > len(migrations):
            raise StoreError(
                f"store schema version {max(done)} is newer than this loginwatch knows"
                f" ({len(migrations)}): upgrade loginwatch"
            )
        for migration in migrations:
            if migration.version in done:
                continue
            for statement in migration.statements(db.dialect):
                run(statement, ())
            run(
                "INSERT INTO loginwatch_schema (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )


def open_store(
    url: str,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    *,
    durable: bool = False,
    password: str | None = None,
) -> Store:
    """The store at ``url``: a SQLite file path, or a ``postgresql://`` URL; migrated.

    ``durable``: fsync every commit, for callers that ack a broker message after it.
    ``password``: PostgreSQL's, from ``[store] password_file`` (never in ``url``).

    Raises:
        StoreError: cannot open, connect or migrate.
    """
    return Store(connect(url, durable, password), migrations)
