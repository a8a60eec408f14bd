"""The store's operations, the same SQL on SQLite and PostgreSQL.

Times are stored as Unix seconds (UTC). Every write is one atomic statement, so several
workers, on one machine (SQLite WAL) or several (PostgreSQL), can share a store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from consumer.model import Action, Decision, FirstSeen, FloodCount, PolicyState, utc
from consumer.store.backends import Database, connect
from consumer.store.migrations import MIGRATIONS, Migration, check
from schemas.errors import StoreError

# Serialises migrations of workers starting at once against one PostgreSQL database.
_PG_MIGRATION_LOCK: Final = 0x6C6F67696E77  # "loginw"
# Flood counts are kept per recipient and FLOOD_SLOT seconds: a count reads at most
# window / FLOOD_SLOT rows per recipient however much mail went out. A window starts at the
# slot holding its start, so a mail up to FLOOD_SLOT seconds older may still count.
FLOOD_SLOT: Final = 10
# Flood counts older than this are deleted when a mail is noted (flood windows are shorter).
FLOOD_KEEP: Final = 7 * 86400.0

_NOTE_MAIL: Final = """
INSERT INTO flood_count (recipient, slot, sent, burst) VALUES (?, ?, 1, ?)
ON CONFLICT (recipient, slot) DO UPDATE SET
    sent = flood_count.sent + 1,
    burst = CASE WHEN excluded.burst > flood_count.burst
                 THEN excluded.burst ELSE flood_count.burst END
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

_DECISION: Final = """
INSERT INTO decision_log (event_id, recipient, action, reason, decided_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (event_id, recipient) DO UPDATE SET
    action = excluded.action, reason = excluded.reason, decided_at = excluded.decided_at
"""
# What record_decisions keeps: the actions that took an event out of someone's inbox.
LOGGED_ACTIONS: Final = frozenset({Action.SILENCED, Action.FOLDED, Action.BURST})


class Store:
    """First-seen sources, the delivery log and flood counters.

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
    ) -> FirstSeen:
        """Whether ``user`` logs in from each of these for the first time; records them.

        Atomic (one transaction of upserts, safe between workers). Idempotent per
        ``event_id``: the event that created a row still reads as first-seen when it is
        redelivered. With
        ``record=False`` (failed logins) nothing is written: a stranger's failed password
        must not make a later real login from there look familiar.
        """
        stamp = utc(now).timestamp()
        scopes = [
            (s, v)
            for s, v in (("address", address), ("network", network), ("country", country))
            if v
        ]
        if not scopes:
            return FirstSeen()
        if not record:
            return FirstSeen(
                **{scope: self._unseen(user, scope, value, event_id) for scope, value in scopes}
            )
        seen = {}
        # One transaction for all scopes: one commit (fsync) per event, and a consistent
        # lock order (address, network, country) so concurrent workers cannot deadlock.
        with self.db.transaction() as run:
            for scope, value in scopes:
                rows = run(_OBSERVE, (_text(user), scope, _text(value), event_id, stamp, stamp))
                seen[scope] = bool(rows) and rows[0][0] == event_id
        return FirstSeen(**seen)

    def _unseen(self, user: str, scope: str, value: str, event_id: str) -> bool:
        rows = self.db.execute(_SEEN, (_text(user), scope, _text(value)))
        return not rows or rows[0][0] == event_id

    def delivered(self, key: str) -> bool:
        """True when the mail with this delivery key was accepted by the SMTP server before."""
        return bool(self.db.execute("SELECT 1 FROM delivery_log WHERE key = ?", (key,)))

    def record_delivery(self, key: str, now: datetime) -> None:
        """Note that the SMTP server accepted this mail (idempotent)."""
        self.db.execute(
            "INSERT INTO delivery_log (key, delivered_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (key, utc(now).timestamp()),
        )

    def flood_state(self, now: datetime, window: float) -> PolicyState:
        """Mails per recipient (lower-cased) within ``window`` seconds before ``now``
        (in FLOOD_SLOT steps: the slot holding the window's start counts whole)."""
        first = _slot(utc(now).timestamp() - window)
        rows = self.db.execute(
            "SELECT recipient, SUM(sent), MAX(burst) FROM flood_count"
            " WHERE slot >= ? GROUP BY recipient",
            (first,),
        )
        return PolicyState(
            flood={
                recipient: FloodCount(sent=int(count), burst_sent=bool(burst))
                for recipient, count, burst in rows
            }
        )

    def note_mail(self, recipient: str, now: datetime, *, burst: bool = False) -> None:
        """Count one mail sent to ``recipient`` (for flood control), pruning old counts."""
        stamp = utc(now).timestamp()
        with self.db.transaction() as run:
            run(_NOTE_MAIL, (recipient.lower(), _slot(stamp), int(burst)))
            run("DELETE FROM flood_count WHERE slot < ?", (_slot(stamp - FLOOD_KEEP),))

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
        """Forget delivery-log and decision-log entries older than ``before`` (``[store]
        keep``); how many delivery-log entries went."""
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


def _text(value: str) -> str:
    """PostgreSQL TEXT cannot hold NUL: store it (and so the backslash) escaped, on both."""
    if "\x00" not in value and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\x00", "\\x00")


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
    url: str, migrations: tuple[Migration, ...] = MIGRATIONS, *, durable: bool = False
) -> Store:
    """The store at ``url``: a SQLite file path, or a ``postgresql://`` URL; migrated.

    ``durable``: fsync every commit, for callers that ack a broker message after it.

    Raises:
        StoreError: cannot open, connect or migrate.
    """
    return Store(connect(url, durable), migrations)
