"""Central state has quotas and an end (issue 17, finding 7), on SQLite and PostgreSQL.

Before: ``first_seen`` and ``first_seen_host`` were never pruned, and one host writing new
user and source pairs at the worker's rate filled ~28 GB a day. Now a source expires
``[store] keep`` after its last sighting (it is new again), pruning runs in bounded
batches, and each host may add so many first-seen rows a day: past that its sightings
are only read, and counted.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumer.store import Sighting, Store, open_store, retention
from consumer.store.quota import day_of
from tests.support.factories import T0


def sight(store: Store, host: str, n: int, when: timedelta = timedelta(0)) -> bool:
    """``alice``'s login on ``host`` from 198.51.100.``n`` (and its /24): new there?"""
    seen = store.observe("alice", address=f"198.51.{n // 250}.{n % 250}", network=None,
                         country=None, event_id=f"{host}-{n}-{when}", now=T0 + when,
                         host=host)  # fmt: skip
    return seen.address


def count(store: Store, table: str, host: str | None = None) -> int:
    where, params = ("WHERE host = ?", (host,)) if host else ("", ())
    return int(store.db.execute(f"SELECT COUNT(*) FROM {table} {where}", params)[0][0])


def test_a_source_unseen_for_keep_is_new_again_and_one_seen_since_is_not(store: Store) -> None:
    assert sight(store, "web-1", 1)
    assert sight(store, "web-1", 2)
    assert not sight(store, "web-1", 2, timedelta(days=80))  # seen again: its last sighting
    keep = timedelta(days=90)
    pruned = store.prune_all(T0 + timedelta(days=100) - keep)
    assert pruned["first_seen_host"] == 1
    assert pruned["first_seen"] == 1
    assert sight(store, "web-1", 1, timedelta(days=100))  # unseen for 100 days: new again
    assert not sight(store, "web-1", 2, timedelta(days=100))


def test_pruning_goes_in_bounded_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [("u", "address", f"v{n}", f"e{n}", T0.timestamp(), T0.timestamp())
            for n in range(2 * retention.BATCH + 10)]  # fmt: skip
    store.db.batch([("INSERT INTO first_seen (username, scope, value, event_id, first_at,"
                     " last_at) VALUES (?, ?, ?, ?, ?, ?)", row) for row in rows])  # fmt: skip
    monkeypatch.setattr(retention, "ROUND", 1)  # one batch per table and call
    later = T0 + timedelta(days=1)
    assert store.prune_all(later)["first_seen"] == retention.BATCH
    assert count(store, "first_seen") == retention.BATCH + 10
    assert store.prune_all(later)["first_seen"] == retention.BATCH
    assert store.prune_all(later)["first_seen"] == 10
    assert count(store, "first_seen") == 0


def test_a_host_past_its_daily_first_seen_rows_records_nothing_more_and_is_counted(
    store: Store, store_url: str
) -> None:
    assert store.quota is not None
    store.quota.cap = 10  # rows; each sighting here makes one (an address, no network)
    for n in range(25):
        assert sight(store, "flood-1", n)
    assert count(store, "first_seen_host", "flood-1") == 10
    # Its sources past the cap were never recorded: each reads as new again (more alerts,
    # never fewer), and nothing of them was written fleet-wide either.
    assert sight(store, "flood-1", 20, timedelta(minutes=1))
    assert count(store, "first_seen") == 10
    # Another host keeps its own budget.
    for n in range(3):
        assert sight(store, "db-1", 100 + n)
        assert not sight(store, "db-1", 100 + n, timedelta(minutes=2))
    store.close()  # writes the last batch's counts
    with open_store(store_url) as again:
        rows = again.db.execute(
            "SELECT host, stored, over FROM store_quota WHERE day = ? AND what = 'first_seen'"
            " ORDER BY host", (day_of(T0),),
        )  # fmt: skip
    assert [tuple(r) for r in rows] == [("db-1", 3, 0), ("flood-1", 10, 16)]


def test_the_worker_s_batches_keep_the_same_budget(store: Store) -> None:
    assert store.quota is not None
    store.quota.cap = 4
    for start in (0, 3, 6):  # batches of three events, as the worker takes them
        sightings = [Sighting("bob", f"b{n}", T0, address=f"203.0.113.{n}", host="flood-2")
                     for n in range(start, start + 3)]  # fmt: skip
        work = store.batch(sightings, budgets=[("flood-2", "login")], now=T0, window=600)
        assert all(seen.address for seen in work.first_seen)
    # The budget is read before each batch: the batch that crosses it is written whole.
    assert count(store, "first_seen_host", "flood-2") == 6
