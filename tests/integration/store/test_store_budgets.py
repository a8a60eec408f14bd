"""Flood budgets and first-seen per host, in the store, on SQLite and PostgreSQL; and the
issue's scenarios through the real policy and pipeline (a fake SMTP sender)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from consumer.alerts.pipeline import Stages, Verdict, process
from consumer.core.decisions import Budget, FloodCount
from consumer.core.enriched import FirstSeen
from consumer.core.identity import Identity
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Store, open_store
from consumer.store.migrations import MIGRATIONS
from schemas.config import parse_config
from schemas.event import LoginEvent, Outcome, PamType, encode
from tests.support.factories import T0, books, event
from tests.support.fakes import Outbox

WINDOW = 600.0


# --- flood budgets ---------------------------------------------------------------------


def test_budgets_are_counted_per_host_and_kind_with_a_fleet_total(store: Store) -> None:
    ops = "ops@example.org"
    for n in range(11):
        store.note_mail(ops, "web-1", "failure", T0 + timedelta(seconds=n))
    store.note_mail(ops, "web-1", "failure", T0 + timedelta(seconds=20), burst=Budget.HOST)
    store.note_mail(ops, "WEB-2", "login", T0)
    store.note_mail(ops, "web-3", "login", T0, burst=Budget.FLEET)
    now = T0 + timedelta(minutes=1)
    db = store.flood_state(now, WINDOW, host="db-1", kind="login")
    assert db.count(ops, "db-1", "login") == FloodCount()
    assert db.fleet_count(ops, "login") == FloodCount(sent=2, burst_sent=True)
    assert db.fleet_count(ops, "failure") == FloodCount()  # not read for a login
    web = store.flood_state(now, WINDOW, host="Web-1", kind="failure")
    assert web.count(ops, "web-1", "failure") == FloodCount(sent=12, burst_sent=True)
    assert web.fleet_count(ops, "failure") == FloodCount(sent=12)  # a host burst, not fleet
    assert store.flood_state(now, WINDOW, host="web-2", kind="login").count(
        ops, "web-2", "login"
    ) == FloodCount(sent=1)


@pytest.mark.parametrize("host", ["a\x00b", "a\\x00b", "", "evil\r\nBcc: x", "x" * 253])
def test_hostile_host_names_have_budgets_of_their_own(store: Store, host: str) -> None:
    store.note_mail("ops@example.org", host, "login", T0)
    state = store.flood_state(T0, WINDOW, host=host, kind="login")
    assert state.count("ops@example.org", host, "login") == FloodCount(sent=1)
    other = "a\\x00b" if host == "a\x00b" else "a\x00b"
    assert (
        store.flood_state(T0, WINDOW, host=other, kind="login").count(
            "ops@example.org", other, "login"
        )
        == FloodCount()
    )


CONFIG = parse_config(
    """
[smtp]
from = "loginwatch@example.org"

[enrich]
dns = false

[[route]]
to = ["ops@example.org"]
"""
)


def worker(store_url: str) -> tuple[Stages, Outbox]:
    store = open_store(store_url)
    outbox = Outbox()
    stages = Stages(
        decode=Decoder(Identity()),
        enrich=Enricher(CONFIG.enrich, store),
        policy=Policy(CONFIG),
        render=Renderer(CONFIG),
        send=outbox,
        store=store,
        clock=lambda: T0,
        **books(store, CONFIG),
    )
    return stages, outbox


def failure(host: str, n: int, user: str = "root") -> LoginEvent:
    return event(
        host=host,
        user=user,
        client_ip=f"203.0.113.{n % 250}",
        pam_type=PamType.AUTH,
        outcome=Outcome.FAILURE,
        time=T0 + timedelta(seconds=n),
    )


def subjects(outbox: Outbox) -> list[str]:
    return [str(m["Subject"]) for m in outbox.sent]


def test_failures_on_one_host_never_fold_a_login_on_another(store_url: str) -> None:
    """The issue's case: 11 failures for root on web-1, then a real root login on db-1 from
    a new source: the login is mailed (it was "folded …" before)."""
    stages, outbox = worker(store_url)
    for n in range(11):
        assert (
            process(stages, Incoming(encode(failure("web-1", n)), "guest")).verdict is Verdict.DONE
        )
    assert len(outbox.sent) == 11  # 10 alerts and the burst mail for web-1's failures
    assert subjects(outbox)[-1].startswith("Flood control")
    real = event(host="db-1", user="root", client_ip="198.51.100.23")
    process(stages, Incoming(encode(real), "guest"))
    assert len(outbox.sent) == 12
    assert "root@db-1" in subjects(outbox)[-1]
    # And a real root login on web-1 itself: failures have a budget of their own.
    process(stages, Incoming(encode(event(host="web-1", user="root")), "guest"))
    assert "root@web-1" in subjects(outbox)[-1]
    stages.close()


def test_one_host_flooding_its_own_logins_cannot_fold_another_hosts(store_url: str) -> None:
    stages, outbox = worker(store_url)
    for n in range(30):
        fake = event(host="web-1", user=f"u{n}", time=T0 + timedelta(seconds=n))
        process(stages, Incoming(encode(fake), "guest"))
    assert len(outbox.sent) == 11  # web-1 folds its own flood after its burst mail
    process(stages, Incoming(encode(event(host="db-1", user="root")), "guest"))
    assert "root@db-1" in subjects(outbox)[-1]
    stages.close()


def test_many_host_names_reach_the_fleet_cap_but_not_a_login_budget(store_url: str) -> None:
    """A relay (or the central user) may speak for any host name: a flood of failures under
    invented names stops at the fleet cap (by default 5 * (10 + 1) = 55, and one fleet burst
    mail), and logins still go."""
    stages, outbox = worker(store_url)
    for n in range(200):
        process(stages, Incoming(encode(failure(f"fake-{n}", n, user=f"u{n}")), "guest"))
    assert len(outbox.sent) == 56
    assert subjects(outbox)[-1].startswith("Flood control")
    process(stages, Incoming(encode(event(host="db-1", user="root")), "guest"))
    assert "root@db-1" in subjects(outbox)[-1]
    stages.close()


# --- first-seen per host -----------------------------------------------------------------


def seen(
    store: Store, event_id: str, host: str | None, address: str = "203.0.113.66", **kw: object
) -> FirstSeen:
    args: dict[str, object] = {
        "address": address,
        "network": None,
        "country": None,
        "event_id": event_id,
        "now": T0,
        "host": host,
    }
    args.update(kw)
    return store.observe("root", **args)  # type: ignore[arg-type]


def test_one_host_cannot_make_a_source_familiar_on_another(store: Store) -> None:
    assert seen(store, "forged", "web-1").address  # a compromised web-1 reports it once
    assert not seen(store, "again", "web-1").address  # familiar to web-1 itself
    assert seen(store, "real", "db-1").address  # still new on db-1
    assert seen(store, "real", "db-1").address  # a redelivery reads the same
    # Two hosts reported it: a third host's login from there is familiar.
    assert not seen(store, "third", "db-2").address


def test_case_variants_of_one_host_vouch_once(store: Store) -> None:
    for n, variant in enumerate(("web-1", "WEB-1", "Web-1", "wEB-1")):
        seen(store, f"v{n}", variant)
    assert seen(store, "real", "db-1").address


def test_failures_with_a_host_compare_without_recording(store: Store) -> None:
    assert seen(store, "f1", "web-1", record=False).address
    assert seen(store, "f2", "web-2", record=False).address
    assert seen(store, "real", "db-1").address
    assert not seen(store, "f3", "db-1", record=False).address
    assert seen(store, "f4", "web-1", record=False).address


def test_vouchers_is_how_many_other_hosts_it_takes(store: Store) -> None:
    seen(store, "e1", "web-1", vouchers=1)
    assert not seen(store, "e2", "db-1", vouchers=1).address
    for n in range(3):
        seen(store, f"h{n}", f"h{n}", address="198.51.100.1", vouchers=4)
    assert seen(store, "h3", "h3", address="198.51.100.1", vouchers=4).address
    assert not seen(store, "h4", "h4", address="198.51.100.1", vouchers=4).address


def test_without_a_host_the_fleet_row_works_as_before(store: Store) -> None:
    """The digest scheduler observes without ``host``; the digest's first-seen list joins
    the fleet row, which records the first event from a source on any host."""
    assert seen(store, "d1", None).address
    assert not seen(store, "d2", None).address
    assert seen(store, "w1", "db-1").address  # per host, new on db-1
    rows = store.db.execute("SELECT event_id FROM first_seen WHERE username = 'root'")
    assert rows == [("d1",)]


def test_the_enricher_keys_first_seen_by_host(store: Store) -> None:
    enricher = Enricher(CONFIG.enrich, store)
    assert enricher.facts(event(host="web-1", user="root"), T0).first_seen.address
    assert enricher.facts(event(host="db-1", user="root"), T0).first_seen.address
    assert not enricher.facts(event(host="db-2", user="root"), T0).first_seen.address


def test_an_upgrade_keeps_sources_familiar_where_the_digest_knows_the_host(
    store_url: str,
) -> None:
    with open_store(store_url, MIGRATIONS[:4]) as old:
        old.observe("root", address="192.0.2.7", network=None, country=None, event_id="e1",
                    now=T0)  # fmt: skip
        old.db.execute(
            "INSERT INTO digest_event VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("e1", 0, "Web-1", "root", "login", "192.0.2.7", "", "", 0, ""),
        )
    with open_store(store_url) as new:
        assert not seen(new, "e2", "web-1", address="192.0.2.7").address
        assert seen(new, "e3", "db-1", address="192.0.2.7").address


def test_concurrent_workers_agree_on_one_first_seen_per_host(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(6)]
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(len(stores))

    def worker(index: int) -> None:
        barrier.wait(timeout=10)
        host = "web-1" if index % 2 else "db-1"
        results.append((host, seen(stores[index], f"event-{index}", host).address))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for opened in stores:
        opened.close()
    assert sorted(results) == [("db-1", False)] * 2 + [("db-1", True)] + [("web-1", False)] * 2 + [
        ("web-1", True)
    ]


@pytest.mark.parametrize("host", ["a\x00b", "a\\x00b", "evil\r\nBcc: x", "'; DROP TABLE t; --"])
def test_hostile_host_names_are_first_seen_hosts_of_their_own(store: Store, host: str) -> None:
    assert seen(store, "e1", host).address
    assert not seen(store, "e2", host).address
    other = "a\\x00b" if host == "a\x00b" else "a\x00b"
    assert seen(store, "e3", other).address
