"""The digest's tables in the shared store (migration 3): events, window states, cuts, lease.

Same SQL on SQLite and PostgreSQL (``?`` placeholders; see consumer/store/backends.py).
Every state change is one conditional statement, so two schedulers racing for the same
window cannot both move it: the ``UPDATE … WHERE state = …`` that matched no row lost.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from consumer.digest.windows import Window
from consumer.store import Sighting, Store
from consumer.store.backends import Statement
from consumer.store.quota import HostQuota, quota_host
from consumer.store.retention import prune_table
from schemas.errors import StoreError

LEASE: Final = "digest-scheduler"

_INSERT_EVENT: Final = """
INSERT INTO digest_event
    (event_id, at, host, username, kind, client_ip, rhost, auth_method, dropped, audience,
     arrived_at, host_at, fingerprint, service, session_seconds)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING
"""
# A host's `dropped` counter is its own word: stored at most this (2^31 - 1), so that no
# sum the digest takes can leave a BIGINT (2^63 - 1) before 2^32 events in one group.
MAX_DROPPED: Final = 2**31 - 1
# Take the lease when it is free, expired, or already ours; RETURNING says whether we got it.
_LEASE: Final = """
INSERT INTO digest_lease (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE digest_lease.holder = excluded.holder OR digest_lease.expires_at < ?
RETURNING holder
"""


class State(enum.Enum):
    OPEN = "open"  # due, nothing done yet
    SENDING = "sending"  # a scheduler is sending it (or died doing so)
    SENT = "sent"  # the SMTP server accepted it and the sent log says so
    SKIPPED = "skipped"  # empty window with [digest] empty = "skip"
    FAILED = "failed"  # the SMTP server refused it for good (5xx, template error): logged


# event_id, at (where it is counted), host, username, kind, client_ip, rhost, auth_method,
# dropped, audience, arrived_at (the central side's clock), host_at (the host's clock),
# fingerprint (the SSH key's SHA256, "" without one: expected logins, docs/actions.md),
# service (the PAM service: sshd, sudo…), session_seconds (a logout's session, or None).
EventRow = tuple[str, int, str, str, str, str, str, str, int, str, int, int, str, str, float | None]


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def moment(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


class DigestStore:
    """The digest's view of a ``Store``; every method raises ``StoreError`` on failure."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        # Each host's stored events per day (consumer/store/quota.py: EVENTS_CAP).
        self.quota = HostQuota("events")
        self._loaded: int | None = None  # the day whose totals were read from the store

    def add_events(self, rows: Sequence[EventRow], sightings: Sequence[Sighting] = ()) -> None:
        """Store events, and observe ``sightings`` (``Store.observe_all``), in one
        transaction (one round trip on PostgreSQL); an event stored before is left as it was.
        A host past its day's budget of stored events has the rest counted, not stored."""
        counted: list[Statement] = []
        if rows and self.store.quota is not None:  # None: a schema before the quota table
            day = rows[0][10] // 86400
            if day != self._loaded:
                # Once a day (and after a start): the intake is one process, the lease
                # holder, so its own counts are the store's from then on.
                self.quota.load(self.db.execute(*self.quota.read(day, every_host=True)), day)
                self._loaded = day
            rows = [r for r in rows if self.quota.allow(quota_host(r[2]), r[10] // 86400)]
            counted = self.quota.statements(day)[0]
        inserts = [(_INSERT_EVENT, _bounded(row)) for row in rows]
        self.store.observe_all(sightings, before=[*counted, *inserts])

    # -- lease ------------------------------------------------------------------------

    def healthy(self) -> bool:
        """The store answers a trivial query (tells a broken window from a broken store)."""
        try:
            self.db.execute("SELECT 1")
        except StoreError:
            return False
        return True

    def acquire(self, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the scheduler lease until ``now + ttl``; False: someone else has it."""
        rows = self.db.execute(_LEASE, (LEASE, holder, now + ttl, now))
        return bool(rows) and rows[0][0] == holder

    def release(self, holder: str) -> None:
        """Give the lease up at once (clean shutdown), so a standby need not wait."""
        self.db.execute(
            "UPDATE digest_lease SET expires_at = 0 WHERE name = ? AND holder = ?", (LEASE, holder)
        )

    def holder(self, now: float) -> str | None:
        """Who holds the lease now, if anyone."""
        rows = self.db.execute(
            "SELECT holder FROM digest_lease WHERE name = ? AND expires_at >= ?", (LEASE, now)
        )
        return str(rows[0][0]) if rows else None

    # -- windows ----------------------------------------------------------------------

    def open_window(self, window: Window, recipients: Sequence[str], now: float) -> None:
        """Create the OPEN rows of a due window (rows that exist stay as they are)."""
        with self.db.transaction() as run:
            for recipient in recipients:
                run(
                    "INSERT INTO digest_send (window_key, recipient, start_at, end_at, state,"
                    " owner, updated_at) VALUES (?, ?, ?, ?, ?, '', ?)"
                    " ON CONFLICT (window_key, recipient) DO NOTHING",
                    (window.key, recipient, epoch(window.start), epoch(window.end),
                     State.OPEN.value, now),
                )  # fmt: skip

    def state(self, window: Window, recipient: str) -> State | None:
        rows = self.db.execute(
            "SELECT state FROM digest_send WHERE window_key = ? AND recipient = ?",
            (window.key, recipient),
        )
        return State(rows[0][0]) if rows else None

    def claim(
        self, window: Window, recipient: str, owner: str, now: float, stale_before: float
    ) -> bool:
        """OPEN → SENDING; or take a SENDING row over: our own (a retry after a transient
        failure), or another scheduler's whose claim is older than ``stale_before`` (it lost
        the lease mid-send: a live holder renews its lease after every claim, so a claim
        older than the lease is an interrupted one). False: someone else is sending it, or
        it is SENT, SKIPPED or FAILED already."""
        rows = self.db.execute(
            "UPDATE digest_send SET state = ?, owner = ?, updated_at = ?"
            " WHERE window_key = ? AND recipient = ? AND (state = ?"
            " OR (state = ? AND (owner = ? OR updated_at < ?))) RETURNING owner",
            (State.SENDING.value, owner, now, window.key, recipient,
             State.OPEN.value, State.SENDING.value, owner, stale_before),
        )  # fmt: skip
        return bool(rows)

    def finished(self, window: Window, recipients: Sequence[str]) -> bool:
        """Every recipient's row of ``window`` is SENT, SKIPPED or FAILED."""
        states = [self.state(window, r) for r in recipients]
        return all(s in (State.SENT, State.SKIPPED, State.FAILED) for s in states)

    def finish(self, window: Window, recipient: str, state: State, now: float) -> None:
        """SENDING → SENT, SKIPPED or FAILED."""
        self.db.execute(
            "UPDATE digest_send SET state = ?, updated_at = ? WHERE window_key = ?"
            " AND recipient = ? AND state = ?",
            (state.value, now, window.key, recipient, State.SENDING.value),
        )

    def anchor(self, now: datetime) -> datetime:
        """When the first scheduler of this store started (set once, by the first call)."""
        self.db.execute(
            "INSERT INTO digest_anchor (name, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (LEASE, epoch(now)),
        )
        rows = self.db.execute("SELECT at FROM digest_anchor WHERE name = ?", (LEASE,))
        return moment(int(rows[0][0]))

    # -- send-now cuts ----------------------------------------------------------------

    def cut(self, at: datetime) -> None:
        self.db.execute(
            "INSERT INTO digest_cut (at) VALUES (?) ON CONFLICT DO NOTHING", (epoch(at),)
        )

    def cuts(self, since: datetime) -> list[datetime]:
        rows = self.db.execute("SELECT at FROM digest_cut WHERE at >= ?", (epoch(since),))
        return [moment(int(row[0])) for row in rows]

    # -- retention --------------------------------------------------------------------

    def prune(self, before: datetime) -> int:
        """``prune_all``; how many events went."""
        return self.prune_all(before)["digest_event"]

    def prune_all(self, before: datetime) -> dict[str, int]:
        """Forget events, window states and cuts older than ``before`` (``[store] keep``),
        and what ``Store.prune_all`` forgets, in bounded batches
        (``consumer/store/retention.py``); how many rows went, per table."""
        stamp = epoch(before)
        pruned = {
            table: prune_table(self.db, table, column, stamp)
            for table, column in (("digest_event", "at"), ("digest_send", "end_at"),
                                  ("digest_cut", "at"))
        }  # fmt: skip
        return pruned | self.store.prune_all(before)


def _bounded(row: EventRow) -> EventRow:
    """``row`` with ``dropped`` clamped into ``[0, MAX_DROPPED]`` (whatever the wire allowed)."""
    dropped = min(max(row[8], 0), MAX_DROPPED)
    return (*row[:8], dropped, *row[9:])
