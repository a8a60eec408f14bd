"""Failed logins per host, source and minute (what a flood's shed failures leave), on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from consumer.store import Store
from consumer.store.failures import OTHER, SOURCES_PER_SLOT, FailureTally
from tests.support.factories import T0


def test_failures_are_counted_per_source_on_each_host_and_fleet_wide(store: Store) -> None:
    tally = FailureTally()
    for _ in range(37):
        tally.add("web-1", "198.51.100.7", T0)
    tally.add("db-1", "198.51.100.7", T0 + timedelta(minutes=3))
    tally.add("web-1", "a\x00b\\", T0)  # hostile text is stored as the store stores text
    store.count_failures(tally, T0)
    store.count_failures(tally, T0)  # written once: the tally forgot what it wrote
    since = T0 - timedelta(minutes=10)
    assert store.failures("198.51.100.7", since, host="web-1") == 37
    assert store.failures("198.51.100.7", since) == 38
    assert store.failures("198.51.100.7", T0 + timedelta(minutes=2)) == 1
    assert store.failures("a\x00b\\", since, host="web-1") == 1


def test_a_host_inventing_sources_gets_a_bounded_number_of_rows(store: Store) -> None:
    tally = FailureTally()
    for n in range(SOURCES_PER_SLOT + 500):
        tally.add("flood", f"10.0.{n >> 8}.{n & 255}", T0)
    assert len(tally.counts) == SOURCES_PER_SLOT + 1
    store.count_failures(tally, T0)
    assert store.failures(OTHER, T0 - timedelta(minutes=1), host="flood") == 500
    rows = store.db.execute("SELECT COUNT(*) FROM source_failures")[0][0]
    assert rows == SOURCES_PER_SLOT + 1


def test_old_counts_go_when_new_ones_are_written(store: Store) -> None:
    tally = FailureTally()
    tally.add("web-1", "192.0.2.1", T0)
    store.count_failures(tally, T0)
    tally.add("web-1", "192.0.2.2", T0 + timedelta(days=2))
    store.count_failures(tally, T0 + timedelta(days=2))
    assert store.failures("192.0.2.1", T0 - timedelta(days=1)) == 0
    assert store.failures("192.0.2.2", T0) == 1
