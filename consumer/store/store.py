"""The store's operations, the same SQL on SQLite and PostgreSQL.

Times are stored as Unix seconds (UTC). Every write is atomic (one statement, or one
transaction), so several workers, on one machine (SQLite WAL) or several (PostgreSQL), can
share a store. The SQL lives with what it serves: ``first_seen.py``, ``flood.py``,
``logs.py`` (sent and decision logs); ``batch.py`` is the worker's batch of events.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.decisions import Budget, Decision, PolicyState
from consumer.core.detections import HostState
from consumer.core.enriched import FirstSeen
from consumer.store.backends import Database, Row, Statement, connect
from consumer.store.batch import StoreBatch
from consumer.store.failures import FailureTally, read_statement
from consumer.store.first_seen import Sighting, observe
from consumer.store.flood import FLOOD_KEEP, FLOOD_SLOT, FloodLedger, note_statements
from consumer.store.hosts import (
    Beat,
    HostReport,
    HostRow,
    alerted_statement,
    beat_statements,
    host_states,
    quiet_read,
    reported_since,
    retire_statement,
)
from consumer.store.logs import decision_statements, record_sent_statement, was_sent_statement
from consumer.store.migrations import MIGRATIONS, Migration, check
from consumer.store.quota import HostQuota, day_of
from consumer.store.retention import prune_table
from schemas.errors import StoreError

__all__ = [
    "FLOOD_KEEP", "FLOOD_SLOT", "Beat", "HostReport", "HostRow", "Sighting", "Store",
    "StoreBatch", "migrate", "open_store",
]  # fmt: skip

# The migration that made store_quota (consumer/store/quota.py).
QUOTA_VERSION: Final = 8
# Serialises migrations of workers starting at once against one PostgreSQL database.
_PG_MIGRATION_LOCK: Final = 0x6C6F67696E77  # "loginw"


class Store:
    """First-seen sources, the sent log and flood counters.

    Every method raises ``StoreError`` when the database fails.
    """

    def __init__(self, db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        self.db = db
        migrate(db, migrations)
        # Each host's new first-seen rows per day (consumer/store/quota.py), this process's
        # view; none on a schema before the quota table (tests of older migrations).
        self.quota = HostQuota("first_seen") if len(migrations) >= QUOTA_VERSION else None

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
        sighting = Sighting(user, event_id, now, address, network, country, record, host,
                            vouchers, votes)  # fmt: skip
        return self.observe_all([sighting])[0]

    def observe_all(
        self, sightings: Sequence[Sighting], *, before: Sequence[Statement] = ()
    ) -> list[FirstSeen]:
        """``observe`` each, in order, in one transaction (one round trip on PostgreSQL):
        a source two of them share is new to the first only. ``before``: statements of
        the caller's to run first in the same transaction (their rows are dropped)."""
        seen, _ = observe(self.db, sightings, before=before, quota=self.quota)
        return seen

    def was_sent(self, key: str) -> bool:
        """True when the mail with this delivery key was accepted by the SMTP server before."""
        return bool(self.db.execute(*was_sent_statement(key)))

    def record_sent(self, key: str, now: datetime) -> None:
        """Note that the SMTP server accepted this mail (idempotent)."""
        self.db.execute(*record_sent_statement(key, now))

    def flood_state(self, now: datetime, window: float, *, host: str, kind: str) -> PolicyState:
        """The flood counts an event of ``kind`` on ``host`` is decided by: per recipient,
        its host budget and its kind's fleet budget, within ``window`` seconds before
        ``now`` (in FLOOD_SLOT steps: the slot holding the window's start counts whole)."""
        ledger = FloodLedger(window)
        sql, params = ledger.read(host, kind, now)
        ledger.load(host, kind, self.db.execute(sql, params))
        return ledger.state(now, host=host, kind=kind)

    def note_mail(
        self, recipient: str, host: str, kind: str, now: datetime, *, burst: Budget | None = None
    ) -> None:
        """Count one mail to ``recipient`` about an event of ``kind`` on ``host`` in both its
        budgets (``burst``: the budget whose burst mail this is), pruning old counts."""
        self.db.batch(note_statements(recipient, host, kind, now, burst))

    def record_decisions(self, event_id: str, decisions: Iterable[Decision], now: datetime) -> None:
        """Log the decisions the digest must report (silenced, folded, burst); a later
        decision for the same event and recipient (a redelivery) replaces the earlier."""
        if rows := decision_statements(event_id, decisions, now):
            self.db.batch(rows)

    def batch(
        self,
        sightings: Sequence[Sighting],
        *,
        budgets: Iterable[tuple[str, str]],
        now: datetime,
        window: float,
        hosts: Sequence[HostReport] = (),
        reads: Sequence[Statement] = (),
    ) -> StoreBatch:
        """The store's work for one batch of events (``consumer/store/batch.py``): the hosts'
        rows noted, the sightings observed, the ``(host, kind)`` flood budgets and the
        caller's ``reads`` read, in one round trip."""
        return StoreBatch(self.db, sightings, budgets=budgets, now=now, window=window,
                          quota=self.quota, hosts=hosts, reads=reads)  # fmt: skip

    def hosts_reported(self, since: datetime) -> list[HostRow]:
        """The hosts whose last event arrived at ``since`` or later (consumer/store/hosts.py),
        with the version it reported, by name."""
        return reported_since(self.db, since)

    def note_beats(self, beats: Sequence[Beat]) -> None:
        """The hosts' heartbeats (consumer/store/hosts.py), in one transaction."""
        if statements := beat_statements(beats):
            self.db.batch(statements)

    def quiet_hosts(self, since: datetime) -> list[HostState]:
        """The hosts, not retired, whose last event and heartbeat came before ``since``."""
        return host_states(self.db.execute(*quiet_read(since)))

    def quiet_alerted(self, host: str, now: datetime) -> None:
        """The quiet alert of ``host``'s silence went out (its next report clears it)."""
        self.db.execute(*alerted_statement(host, now))

    def read_all(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Reads of the caller's (``consumer/store/hosts.py``, ``sessions.py``), in one
        round trip; their rows in order."""
        return [list(rows) for rows in self.db.batch(statements)] if statements else []

    def retire_host(self, host: str, now: datetime) -> bool:
        """End the watch on ``host``; False: no such host reported."""
        return bool(self.db.execute(*retire_statement(host, now)))

    def count_failures(self, tally: FailureTally, now: datetime) -> None:
        """Write the failed logins ``tally`` holds (one transaction) and forget them; on
        ``StoreError`` the tally keeps them for the next call."""
        if statements := tally.statements(now):
            self.db.batch(statements)
            tally.written()

    def failures(self, source: str, since: datetime, host: str = "") -> int:
        """Failed logins from ``source`` since ``since``, on ``host`` (``""``: any host),
        shed ones included (``consumer/store/failures.py``)."""
        return int(self.db.execute(*read_statement(source, since, host))[0][0])

    def prune(self, before: datetime) -> int:
        """``prune_all``; how many sent-log entries went."""
        return self.prune_all(before)["delivery_log"]

    def prune_all(self, before: datetime) -> dict[str, int]:
        """Forget what is older than ``before`` (``[store] keep``), bounded
        (``consumer/store/retention.py``): sent-log and decision-log entries, first-seen
        sources last seen before it (they read as new again), the per-host row counts of
        the days before it. How many rows went, per table."""
        stamp = utc(before).timestamp()
        pruned = {
            table: prune_table(self.db, table, column, stamp)
            for table, column in (
                ("delivery_log", "delivered_at"),
                ("decision_log", "decided_at"),
                ("first_seen", "last_at"),
                ("first_seen_host", "last_at"),
                ("user_place", "seen_at"),
                ("login_link", "seen_at"),
                ("host_address", "seen_at"),
            )
        }
        if self.quota is not None:
            pruned["store_quota"] = prune_table(self.db, "store_quota", "day", day_of(before))
        return pruned

    def schema_version(self) -> int:
        rows = self.db.execute("SELECT MAX(version) FROM loginwatch_schema")
        return int(rows[0][0] or 0)

    def close(self) -> None:
        # The counts of the last batch, which would have gone with the next round trip.
        counted = self.quota.statements(0)[0] if self.quota is not None else []
        if counted:
            with contextlib.suppress(StoreError):
                self.db.batch(counted)
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    ca_file: str | None = None,
) -> Store:
    """The store at ``url``: a SQLite file path, or a ``postgresql://`` URL; migrated.

    ``durable``: fsync every commit, for callers that ack a broker message after it.
    ``password``: PostgreSQL's, from ``[store] password_file`` (never in ``url``);
    ``ca_file``: the CA of its certificate (``[store] ca_file``).

    Raises:
        StoreError: cannot open, connect or migrate.
    """
    return Store(connect(url, durable, password, ca_file), migrations)
