"""Rows per speaker: how many rows each host may add to the store in a day, and what was refused.

One host writing new user and source pairs at the rate a worker sustains (~270 events/s,
~1.3 KB of rows each) filled ~28 GB a day, and a full store is an outage for every host.
So each host gets a budget per UTC day and kind of row (``CAPS``):

- ``first_seen``: new first-seen rows (a user's login from an address or network new to
  that host). Past the cap, that host's sources are no longer recorded: each of its logins
  reads as from a new source unless the source was recorded before (more alerts, never
  fewer), and the refusal is counted.
- ``events``: rows of ``digest_event``. Past the cap, that host's events are counted, not
  stored: the digest says how many.

The counts live in ``store_quota`` (host, day, what: stored, over), which the digest reads
to name the hosts over a cap and a host that dominates the store's growth. Each process
keeps what it knows in memory (``HostQuota``) and writes its increments with its next round
trip, reading the day's totals back in the same one; so a batch may be decided on counts
one batch old, and several workers may each overshoot by a batch: a calm-down cap, like the
flood budgets, not an exact quota. Counts of the last batch before a crash may be lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.decisions import flood_host
from consumer.store.backends import Row, Statement
from consumer.store.text import sql_text

# A host's new first-seen rows per day: a bastion where 500 users log in from new
# addresses every day makes ~1,000 (address and network); ten times that is no login.
FIRST_SEEN_CAP: Final = 10_000
# A host's stored events per day: a day-long password spray at one try a second is 86,400;
# past the cap the rest are counted. At most ~20 MB a day per host (with the first-seen
# rows), for [store] keep.
EVENTS_CAP: Final = 50_000
CAPS: Final = {"first_seen": FIRST_SEEN_CAP, "events": EVENTS_CAP}

_ADD: Final = """
INSERT INTO store_quota (host, day, what, stored, over) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (host, day, what) DO UPDATE SET
    stored = store_quota.stored + excluded.stored, over = store_quota.over + excluded.over
"""
_FULL: Final = "SELECT host, stored FROM store_quota WHERE day = ? AND what = ? AND stored >= ?"


def quota_host(host: str) -> str:
    """The name a host's budget is kept under: as its first-seen rows and flood budgets
    know it (lower-cased, stored text)."""
    return sql_text(flood_host(host))


def day_of(now: datetime) -> int:
    """The UTC day number (days since 1970-01-01) of ``now``."""
    return int(utc(now).timestamp()) // 86400


class HostQuota:
    """One process's view of one kind of row's daily budget per host (see the module)."""

    def __init__(self, what: str, cap: int | None = None) -> None:
        self.what = what
        self.cap = CAPS[what] if cap is None else cap
        self._used: dict[tuple[str, int], int] = {}  # (host, day) -> rows known stored
        self._pending: dict[tuple[str, int], list[int]] = {}  # not written yet: stored, over

    def full(self, host: str, day: int) -> bool:
        """Whether ``host`` used up its budget of ``day`` (as far as this process knows)."""
        return self._used.get((host, day), 0) >= self.cap

    def allow(self, host: str, day: int) -> bool:
        """Take one row of ``host``'s budget of ``day``; False (and counted over): none left."""
        if self.full(host, day):
            self.add(host, day, over=1)
            return False
        self.add(host, day, stored=1)
        return True

    def add(self, host: str, day: int, *, stored: int = 0, over: int = 0) -> None:
        """Count rows ``host`` stored, and rows it was refused, on ``day``."""
        if not stored and not over:
            return
        self._used[(host, day)] = self._used.get((host, day), 0) + stored
        counts = self._pending.setdefault((host, day), [0, 0])
        counts[0] += stored
        counts[1] += over

    def statements(self, day: int) -> tuple[list[Statement], Statement]:
        """The pending counts as upserts (they count as written from here on), and a read of
        the hosts whose budget of ``day`` is used up as the store counts it (every
        process's rows: few, whatever the fleet's size), for one transaction (``load``)."""
        writes: list[Statement] = [
            (_ADD, (host, when, self.what, stored, over))
            for (host, when), (stored, over) in sorted(self._pending.items())
        ]
        self._pending.clear()
        return writes, self.read(day)

    def read(self, day: int, *, every_host: bool = False) -> Statement:
        """The read of the hosts whose budget of ``day`` is used up, or (``every_host``)
        of every host's count of the day (``load`` its rows)."""
        return _FULL, (day, self.what, 0 if every_host else self.cap)

    def load(self, rows: Sequence[Row], day: int) -> None:
        """The counts ``read`` (or ``statements``) read of ``day``; forgets other days."""
        for old in [key for key in self._used if key[1] != day]:
            del self._used[old]  # yesterday's budget is done with
        for host, stored in rows:
            known = self._used.get((str(host), day), 0)
            self._used[(str(host), day)] = max(known, int(stored))
