"""The hosts table on SQLite and PostgreSQL: each host's last event and the version it ran,
written with a batch's first round trip, read by `loginwatch status`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumer.commands.status import version_lines
from consumer.store import HostReport, HostRow, Store
from schemas.config import parse_config

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def note(store: Store, *reports: HostReport) -> None:
    work = store.batch([], budgets=[], now=T0, window=60, hosts=reports)
    work.flush()


def test_each_host_keeps_its_latest_event_and_version(store: Store) -> None:
    note(store, HostReport("web-1", T0, "0.1.0"), HostReport("db-1", T0, "0.2.0"))
    # A host upgraded: its next event says so; the same host twice in one batch, last wins.
    later = T0 + timedelta(hours=1)
    note(store, HostReport("web-1", later, "0.2.0"), HostReport("web-1", later, "0.2.1"))
    # A batch that commits late (an older event) moves no host back.
    note(store, HostReport("web-1", T0 + timedelta(minutes=5), "0.1.0"))
    assert store.hosts_reported(T0 - timedelta(days=1)) == [
        HostRow("db-1", T0, "0.2.0"),
        HostRow("web-1", later, "0.2.1"),
    ]
    assert store.hosts_reported(later) == [HostRow("web-1", later, "0.2.1")]


def test_a_hostile_name_and_version_are_stored_as_any_text(store: Store) -> None:
    note(store, HostReport("evil\x00host\\", T0, "0.1\x1b[2J"))
    [row] = store.hosts_reported(T0)
    assert (row.name, row.version) == ("evil\\x00host\\\\", "0.1\x1b[2J")


def test_status_names_the_hosts_still_on_older_versions(store: Store, store_url: str) -> None:
    now = T0 + timedelta(hours=2)
    note(store, *(HostReport(f"web-{n}", T0, "0.2.0") for n in range(12)))
    note(store, *(HostReport(f"old-{n}", T0, "0.1.0") for n in range(12)))
    note(store, HostReport("ancient", T0 - timedelta(days=3), "0.0.9"))  # silent for days
    note(store, HostReport("new", T0, "0.10.0"), HostReport("odd\x1b[31m\u202e", T0, "0.0.1"))
    config = parse_config(f'[store]\nurl = "{store_url}"\n', "test.toml")
    assert version_lines(config, now) == [
        "host-side versions that reported in the last day:",
        "  0.10.0           1 host(s)",
        "  0.2.0           12 host(s): web-0, web-1, web-10, web-11, web-2, web-3, web-4, web-5,"
        " web-6, web-7 and 2 more",
        "  0.1.0           12 host(s): old-0, old-1, old-10, old-11, old-2, old-3, old-4, old-5,"
        " old-6, old-7 and 2 more",
        # A host's name is its own text: shown inert (no terminal escape, no bidi override).
        "  0.0.1            1 host(s): odd\u241b[31m\\u202e",
    ]
    assert version_lines(config, now + timedelta(days=2)) == [
        "host versions: no host reported in the last day"
    ]
