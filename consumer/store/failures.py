"""Failed logins counted per host, source and minute: what a flood's shed failures leave.

The worker counts every failed login it sees here, the ones it processes and the ones it
sheds while their speaker floods (consumer/alerts/shedding.py), so "after N failed
passwords from this address" can be read from the store whatever the worker shed
(``failures``). Rows are per ``FAILURE_SLOT`` seconds; a host that invents sources gets at
most ``SOURCES_PER_SLOT`` rows of its own per slot, the rest counted under ``OTHER``
(``FailureTally``, before anything is written). Rows older than ``FAILURE_KEEP`` go when
counts are written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.store.backends import Statement
from consumer.store.text import sql_text

FAILURE_SLOT: Final = 60
FAILURE_KEEP: Final = 86400.0
SOURCES_PER_SLOT: Final = 200
OTHER: Final = "*"  # every source of a host past SOURCES_PER_SLOT in one slot

_COUNT: Final = """
INSERT INTO source_failures (host, source, slot, failures) VALUES (?, ?, ?, ?)
ON CONFLICT (host, source, slot) DO UPDATE SET
    failures = source_failures.failures + excluded.failures
"""
_READ: Final = """
SELECT COALESCE(SUM(failures), 0) FROM source_failures
WHERE source = ? AND slot >= ? AND (? = '' OR host = ?)
"""


def slot(stamp: float) -> int:
    return int(stamp // FAILURE_SLOT)


class FailureTally:
    """Failed logins counted in memory between writes: (host, source, slot) → count, with
    at most ``SOURCES_PER_SLOT`` sources per host and slot (the rest under ``OTHER``).
    What could not be written stays for the next ``statements``."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, int]] = Counter()
        self._sources: dict[tuple[str, int], set[str]] = {}

    def add(self, host: str, source: str, now: datetime) -> None:
        at = slot(utc(now).timestamp())
        seen = self._sources.setdefault((host, at), set())
        if source not in seen and len(seen) >= SOURCES_PER_SLOT:
            source = OTHER
        seen.add(source)
        self.counts[(host, source, at)] += 1

    def statements(self, now: datetime) -> list[Statement]:
        """The writes of what is counted (and the pruning of old rows); empty: nothing."""
        if not self.counts:
            return []
        stamp = utc(now).timestamp()
        for key in [k for k in self._sources if k[1] < slot(stamp) - 1]:
            del self._sources[key]  # a new slot opened: the cap starts again
        return [
            *((_COUNT, (sql_text(host), sql_text(source), at, count))
              for (host, source, at), count in sorted(self.counts.items())),
            ("DELETE FROM source_failures WHERE slot < ?", (slot(stamp - FAILURE_KEEP),)),
        ]  # fmt: skip

    def written(self) -> None:
        self.counts.clear()


def read_statement(source: str, since: datetime, host: str = "") -> Statement:
    """The failed logins from ``source`` since ``since`` (whole slots), on ``host`` or, for
    ``""``, on every host."""
    at = slot(utc(since).timestamp())
    return _READ, (sql_text(source), at, sql_text(host), sql_text(host))


def counts_statement(sources: Sequence[str], since: datetime) -> Statement:
    """The failed logins from each of ``sources`` since ``since`` (whole slots), per host:
    rows (source, host, failures), one statement for a batch's logins."""
    marks = ", ".join(["?"] * len(sources))
    sql = (f"SELECT source, host, SUM(failures) FROM source_failures"  # noqa: S608
           f" WHERE slot >= ? AND source IN ({marks}) GROUP BY source, host")  # fmt: skip
    return sql, [slot(utc(since).timestamp()), *(sql_text(s) for s in sources)]
