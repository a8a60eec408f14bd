"""Retention: what the store forgets after ``[store] keep``, in bounded batches.

Every table that grows with the events has an end: sent and decision logs by when they
were written, first-seen sources by their *last* sighting (a source unseen for ``keep``
is new again), the digest's events, window states and cuts, and the per-host row counts
(``quota.py``). The digest scheduler (the lease holder) prunes them every hour. Each
``DELETE`` takes at most ``BATCH`` rows, in its own transaction, so no prune holds a lock
for long or grows a transaction without bound; a call takes at most ``ROUND`` batches per
table (``MOST`` rows) and says whether it stopped there, so a backlog (an upgrade from a
store that never pruned first-seen) goes in many short steps, not one long one.
"""

from __future__ import annotations

from typing import Final

from consumer.store.backends import Database

BATCH: Final = 5_000
ROUND: Final = 40
MOST: Final = BATCH * ROUND


def prune_table(db: Database, table: str, column: str, bound: float) -> int:
    """Delete the rows of ``table`` whose ``column`` is below ``bound``, ``BATCH`` at a time,
    at most ``MOST``; how many went. ``table`` and ``column`` are ours, never input.

    Raises:
        StoreError: the database failed (what was deleted before stays deleted).
    """
    if db.dialect == "postgres":
        # ctid = ANY(ARRAY(...)): a TID scan on every PostgreSQL version (tid has no hash
        # operator class before 14, so IN (subquery) would not plan as well).
        sql = (
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table}"  # noqa: S608
            f" WHERE {column} < ? LIMIT ?)) RETURNING 1"
        )
    else:
        sql = (
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"  # noqa: S608
            f" WHERE {column} < ? LIMIT ?) RETURNING 1"
        )
    total = 0
    for _ in range(ROUND):
        gone = len(db.execute(sql, (bound, BATCH)))
        total += gone
        if gone < BATCH:
            break
    return total
