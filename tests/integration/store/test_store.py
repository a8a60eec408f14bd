"""The store on SQLite and PostgreSQL: the same tests, the same answers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer.core.decisions import Action, Budget, Decision, FloodCount
from consumer.core.enriched import FirstSeen
from consumer.store import Store, open_store
from consumer.store.migrations import MIGRATIONS, Migration
from schemas.errors import StoreError

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def observe(
    store: Store, event_id: str, address: str | None = "192.0.2.7", **kw: object
) -> FirstSeen:
    args: dict[str, object] = {
        "address": address,
        "network": "192.0.2.0/24",
        "country": "DE",
        "event_id": event_id,
        "now": T0,
    }
    user = str(kw.pop("user", "alice"))
    args.update(kw)
    return store.observe(user, **args)  # type: ignore[arg-type]


def test_migrations_apply_once_and_can_be_appended(store_url: str) -> None:
    with open_store(store_url) as first:
        assert first.schema_version() == len(MIGRATIONS)
    extra = Migration(len(MIGRATIONS) + 1, "digest events", ("CREATE TABLE digest_x (id TEXT)",))
    with open_store(store_url, (*MIGRATIONS, extra)) as second:
        assert second.schema_version() == len(MIGRATIONS) + 1
        second.db.execute("INSERT INTO digest_x (id) VALUES (?)", ("a",))
    # An older program must refuse a newer schema instead of guessing.
    with pytest.raises(StoreError, match="newer than this loginwatch knows"):
        open_store(store_url)


def test_first_seen_per_scope(store: Store) -> None:
    assert observe(store, "e1") == FirstSeen(address=True, network=True, country=True)
    assert observe(store, "e2") == FirstSeen()
    assert observe(store, "e3", address="192.0.2.8") == FirstSeen(address=True)
    assert observe(store, "e4", user="bob") == FirstSeen(address=True, network=True, country=True)


def test_redelivered_event_is_still_first_seen(store: Store) -> None:
    assert observe(store, "e1").any
    assert observe(store, "e1") == FirstSeen(address=True, network=True, country=True)


def test_failed_logins_do_not_make_a_source_familiar(store: Store) -> None:
    assert observe(store, "f1", record=False).address
    assert observe(store, "f2", record=False).address
    assert observe(store, "e1").address


def test_nothing_to_compare_is_not_first_seen(store: Store) -> None:
    assert observe(store, "e1", address=None, network=None, country=None) == FirstSeen()


def test_hostile_user_names_are_stored_exactly(store: Store) -> None:
    for index, user in enumerate(
        ("a\x00b", "a\\x00b", "evil\r\nBcc: x@y", "'; DROP TABLE first_seen; --", "x" * 4096)
    ):
        assert observe(store, f"e{index}", user=user).address, user
        assert not observe(store, "again", user=user).address, user


def test_concurrent_workers_agree_on_one_first_seen(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(6)]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def worker(index: int) -> None:
        barrier.wait(timeout=10)
        results.append(observe(stores[index], f"event-{index}").address)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for opened in stores:
        opened.close()
    assert sorted(results) == [False] * 5 + [True]


def test_delivery_log(store: Store) -> None:
    key = "alert:00ff:ops@example.org"
    assert not store.was_sent(key)
    store.record_sent(key, T0)
    store.record_sent(key, T0)  # a second record is harmless
    assert store.was_sent(key)
    assert store.prune(T0 + timedelta(seconds=1)) == 1
    assert not store.was_sent(key)


def test_flood_counts_per_recipient_within_the_window(store: Store) -> None:
    now = T0 + timedelta(minutes=10)
    note = store.note_mail
    note("ops@example.org", "web-1", "login", T0 - timedelta(seconds=11))  # before the window
    for at in (T0 + timedelta(seconds=5), T0 + timedelta(minutes=5), T0 + timedelta(minutes=9)):
        note("Ops@Example.org", "web-1", "login", at)
    note("ops@example.org", "web-1", "login", T0 + timedelta(minutes=9), burst=Budget.HOST)
    note("sec@example.org", "web-1", "login", T0 - timedelta(minutes=1))
    state = store.flood_state(now, window=600, host="web-1", kind="login")
    assert state.count("OPS@example.org", "web-1", "login") == FloodCount(sent=4, burst_sent=True)
    assert state.fleet_count("ops@example.org", "login") == FloodCount(sent=4)
    assert state.count("sec@example.org", "web-1", "login") == FloodCount()
    assert state.count("nobody@example.org", "web-1", "login") == FloodCount()


def test_a_flood_count_reads_slots_not_mails(store: Store) -> None:
    """2,000 mails in one window are 50 rows per budget: the count does not grow with mail."""
    for n in range(2_000):
        store.note_mail("ops@example.org", "web-1", "login", T0 + timedelta(milliseconds=250 * n))
    state = store.flood_state(T0 + timedelta(minutes=9), window=600, host="web-1", kind="login")
    assert state.count("ops@example.org", "web-1", "login") == FloodCount(sent=2_000)
    rows = store.db.execute("SELECT COUNT(*) FROM flood_budget")
    assert rows[0][0] == 2 * 50  # 500 s of mail in 10-second slots, host and fleet budgets


def test_an_upgrade_through_migration_4_keeps_the_flood_counts(store_url: str) -> None:
    with open_store(store_url, MIGRATIONS[:3]) as old:
        for minute in (1, 2, 3):
            old.db.execute(
                "INSERT INTO flood_mail (recipient, sent_at, burst) VALUES (?, ?, ?)",
                ("ops@example.org", (T0 + timedelta(minutes=minute)).timestamp(), int(minute == 3)),
            )
    with open_store(store_url, MIGRATIONS[:4]) as new:
        rows = new.db.execute("SELECT recipient, SUM(sent), MAX(burst) FROM flood_count GROUP BY 1")
    assert rows == [("ops@example.org", 3, 1)]
    # Migration 5 cannot split them by host and kind: the budgets start empty.
    with open_store(store_url) as new:
        state = new.flood_state(T0 + timedelta(minutes=5), 600, host="web-1", kind="login")
    assert state.count("ops@example.org", "web-1", "login") == FloodCount()


def test_decision_log_keeps_what_left_the_inbox(store: Store) -> None:
    def decision(action: Action, recipient: str = "Ops@example.org") -> Decision:
        return Decision(action=action, reason=f"because {action.value}", recipient=recipient)

    store.record_decisions(
        "e1", [decision(Action.SILENCED), decision(Action.IMMEDIATE, "sec@example.org")], T0
    )
    store.record_decisions("e1", [decision(Action.FOLDED)], T0 + timedelta(seconds=5))
    store.record_decisions("e2", [decision(Action.DIGEST)], T0)
    rows = store.db.execute("SELECT event_id, recipient, action, reason FROM decision_log")
    assert rows == [("e1", "ops@example.org", "folded", "because folded")]
    store.prune(T0 + timedelta(seconds=6))
    assert store.db.execute("SELECT COUNT(*) FROM decision_log") == [(0,)]


@pytest.mark.integration
def test_postgres_store_reconnects_after_losing_its_connection(
    request: pytest.FixtureRequest,
) -> None:
    import psycopg

    from tests.support.pg import PG_DSN

    new_url: Callable[[], str] = request.getfixturevalue("pg_urls")
    with open_store(new_url()) as store:
        (pid,) = store.db.execute("SELECT pg_backend_pid()")[0]
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError, match="PostgreSQL store"):
            store.was_sent("k")  # this call finds the connection gone…
        store.record_sent("k", T0)  # …the next one reconnects
        assert store.was_sent("k")


def test_sqlite_fsyncs_every_commit_only_where_acks_depend_on_it(tmp_path: Path) -> None:
    # synchronous: 1 = NORMAL (the worker's store), 2 = FULL (the digest's, which acks
    # a broker message once its commit is done).
    from consumer.store.backends import connect

    assert connect(str(tmp_path / "w.db")).execute("PRAGMA synchronous") == [(1,)]
    assert connect(str(tmp_path / "d.db"), durable=True).execute("PRAGMA synchronous") == [(2,)]
