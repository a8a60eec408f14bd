"""The digest and the store's quotas (issue 17, finding 7), on SQLite and PostgreSQL: a host
past its daily budget of stored events has the rest counted, and the digest says so; it
names a host that dominates the store's growth. And a digest of 100,000 distinct hostile
user names: its memory and its mail stay bounded, and it says how many it left out."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from consumer.digest.sender import WindowSender
from consumer.digest.summary import Growth, QuotaRow
from consumer.digest.windows import Window, window_at
from consumer.store.quota import day_of
from tests.support.digest_support import (
    OPS,
    day,
    digests_for,
    failure,
    login,
    make_config,
    store_events,
)
from tests.support.fakes import Outbox


def day0(digests: WindowSender) -> Window:
    return window_at(digests.schedule, day(0, 1))


def stored_per_host(digests: WindowSender) -> dict[str, int]:
    rows = digests.store.db.execute("SELECT host, COUNT(*) FROM digest_event GROUP BY host")
    return {str(host): int(n) for host, n in rows}


def test_events_past_a_host_s_daily_budget_are_counted_and_the_digest_says_so(
    digests: WindowSender,
) -> None:
    digests.store.quota.cap = 20
    store_events(digests, [login(day(0, 2), "flood-1", f"u{n}") for n in range(30)], day(0, 2))
    store_events(digests, [login(day(0, 3), "flood-1", "late")], day(0, 3))
    store_events(digests, [login(day(0, 3), "web-1", f"w{n}") for n in range(5)], day(0, 3))
    assert stored_per_host(digests) == {"flood-1": 20, "web-1": 5}
    ops = digests.summaries(day0(digests), dead=0)[OPS]
    assert ops.over_cap.rows == (QuotaRow("flood-1", events=11, first_seen=0),)
    assert digests.send_window(day0(digests), day(1, 0.1)) == 2
    assert isinstance(digests.mailer, Outbox)
    text = digests.mailer.text(OPS)
    assert "flood-1" in text.split("The store (rows each host may add a day")[1]
    assert "11 event(s) counted, not stored (over 50,000 a day)" in text


def test_the_digest_names_a_host_that_dominates_the_store_s_growth(
    digests: WindowSender,
) -> None:
    today = day_of(day(0, 2))
    digests.store.db.batch([
        ("INSERT INTO store_quota (host, day, what, stored, over) VALUES (?, ?, ?, ?, ?)", row)
        for row in (("web-9", today, "first_seen", 9_000, 0), ("web-9", today, "events", 3_000, 0),
                    ("db-1", today, "events", 100, 0), ("db-2", today - 5, "events", 50_000, 0))
    ])  # fmt: skip
    store_events(digests, [login(day(0, 2), "db-1")], day(0, 2))
    ops = digests.summaries(day0(digests), dead=0)[OPS]
    assert ops.dominant == Growth("web-9", 12_000, 12_101, 2)  # db-2's day is not this window's
    _, text, html = digests.renderer.parts(digests.view(ops))
    said = "web-9 added 99% of the rows the store gained on these days (12,000 of 12,101, from 2"
    assert said in text
    assert "web-9 added 99%" in html


def hostile(n: int) -> str:
    """A distinct user name of 256 characters a terminal or a mail client would rather not
    see: escapes, bidi overrides, zero-width joiners, 4-byte characters."""
    return (f"\x1b[31m{n}\u202e\u200d" + "\U0001f600" * 40 + "x" * 256)[:256]


def test_a_digest_of_100000_hostile_user_names_stays_small(tmp_path: Path) -> None:
    # SQLite only: the aggregation is the same SQL on both (the other tests here run both),
    # and 100,000 rows into PostgreSQL would cost this suite half a minute on a busy machine.
    digests = digests_for(make_config(str(tmp_path / "loginwatch.db")), Outbox())
    at = day(0, 2)
    batch = 5_000
    for start in range(0, 100_000, batch):  # ten hosts: each within its daily budget
        events = [failure(at, f"web-{n % 10}", hostile(n), f"198.51.100.{n % 200}")
                  for n in range(start, start + batch)]  # fmt: skip
        store_events(digests, events, at)
    tracemalloc.start()
    began = datetime.now(UTC)
    ops = digests.summaries(day0(digests), dead=0)[OPS]
    message = digests.renderer.render(digests.view(ops), began)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = len(message.as_bytes())
    print(f"100,000 hostile names: digest mail {size:,} bytes, peak {peak / 1e6:.1f} MB traced")
    assert ops.users.total == 100_000
    assert len(ops.users.rows) == 20  # [digest] top
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "... and 99980 more users" in body  # and so for every list
    assert "\x1b" not in body and "\u202e" not in body
    assert size < 256 * 1024  # the mail: a few hundred lines, whatever the store holds
    assert peak < 64 * 1024 * 1024  # SQL aggregates: Python sees grouped rows only
