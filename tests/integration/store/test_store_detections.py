"""The detections' state on both backends: a user's place and a login's links written with
the batch's first round trip and within the host's first-seen quota, heartbeats and quiet
hosts, retired hosts, and every new table pruned after [store] keep."""

from __future__ import annotations

from datetime import timedelta

from consumer.alerts.detecting import Detecting
from consumer.core.enriched import Enriched
from consumer.store import Beat, HostReport, Sighting, Store
from schemas.config import parse_config
from tests.support.factories import T0, event

CONFIG = parse_config("")


def placed(**fields: object) -> Enriched:
    return Enriched(event=event(session_pid=77, session_start=5, audit_session=3, **fields),
                    latitude=52.52, longitude=13.4, radius=10, city="Berlin", country="DE",
                    network="192.0.2.0/24", received=T0)  # fmt: skip


def run(store: Store, items: list[Enriched]) -> list[Enriched]:
    detections = Detecting(CONFIG, store.quota).batch(items, T0)
    sightings = [Sighting(e.event.user, e.event.id_hex, T0, address=e.event.client_ip,
                          host=e.event.host) for e in items]  # fmt: skip
    work = store.batch(sightings, budgets=[], now=T0, window=600, reads=detections.reads)
    detections.load(work)
    return [detections.found(e) for e in items]


def count(store: Store, table: str) -> int:
    return int(store.db.execute(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_a_login_leaves_its_place_and_links_and_a_sudo_finds_it(store: Store) -> None:
    run(store, [placed()])
    assert count(store, "user_place") == 1
    assert count(store, "login_link") == 2  # audit:3, pid:77:5
    sudo = Enriched(event=event(service="sudo", user="root", ruser="alice", client_ip="",
                                rhost="", audit_session=3,
                                time=T0 + timedelta(minutes=1)))  # fmt: skip
    [found] = run(store, [sudo])
    assert found.escalation is not None and found.escalation.origin is not None
    assert (found.escalation.origin.user, found.escalation.origin.linked_by) == (
        "alice", "audit session 3")  # fmt: skip
    # Tokyo an hour later: too far; the store's place is the one before.
    far = event(client_ip="198.51.100.1", client_port=2, time=T0 + timedelta(hours=1))
    [tokyo] = run(store, [Enriched(event=far, latitude=35.7, longitude=139.7,
                                   network="198.51.100.0/24")])  # fmt: skip
    assert tokyo.travel is not None and tokyo.travel.before.place == "Berlin, DE"


def test_a_host_past_its_quota_leaves_no_state(store: Store) -> None:
    assert store.quota is not None
    store.quota.cap = 0  # its day's first-seen budget is spent
    run(store, [placed()])
    assert count(store, "user_place") == 0 and count(store, "login_link") == 0


def test_heartbeats_quiet_hosts_and_retired_ones(store: Store) -> None:
    store.note_beats([
        Beat(name="web-3", at=T0, version="0.9", spool_depth=4, dropped=1,
             addresses=("10.0.0.3", "192.0.2.3"), goodbye=False),
        Beat(name="web-4", at=T0, version="0.9", spool_depth=0, dropped=0, addresses=(),
             goodbye=True, why="stop"),
        Beat(name="web-5", at=T0, version="0.9", spool_depth=0, dropped=0, addresses=(),
             goodbye=False),
    ])  # fmt: skip
    assert count(store, "host_address") == 2
    later = T0 + timedelta(hours=3)
    assert store.retire_host("web-5", later) and not store.retire_host("nowhere", later)
    quiet = {h.name: h for h in store.quiet_hosts(later - timedelta(hours=2))}
    assert set(quiet) == {"web-3", "web-4"}
    assert quiet["web-4"].goodbye_at is not None and quiet["web-4"].goodbye_why == "stop"
    store.quiet_alerted("web-3", later)
    assert [h.alerted for h in store.quiet_hosts(later) if h.name == "web-3"] == [True]
    # An event from web-3 ends its silence (and web-5's retirement: it came back).
    reports = [HostReport("web-3", later, "0.9"), HostReport("web-5", later, "0.9")]
    store.batch([], budgets=[], now=later, window=600, hosts=reports)
    assert {h.name for h in store.quiet_hosts(later)} == {"web-4"}


def test_the_new_tables_are_pruned_after_keep(store: Store) -> None:
    run(store, [placed()])
    store.note_beats([Beat(name="web-3", at=T0, version="1", spool_depth=0, dropped=0,
                           addresses=("10.0.0.3",), goodbye=False)])  # fmt: skip
    pruned = store.prune_all(T0 + timedelta(days=1))
    assert (pruned["user_place"], pruned["login_link"], pruned["host_address"]) == (1, 2, 1)


def test_a_host_that_never_sent_a_heartbeat_is_not_watched(store: Store) -> None:
    """An old hook reports only logins: a night without any is no silence."""
    store.batch([], budgets=[], now=T0, window=600, hosts=[HostReport("old-1", T0, "0.1")])
    assert store.quiet_hosts(T0 + timedelta(days=1)) == []
