"""What a host's own numbers and clock can do to the digest (issue 9 items 7 and 8), on
SQLite and PostgreSQL: huge ``dropped`` counters, a window that cannot be made, 100k
dropping host names, and events back-dated by days or forward-dated by years."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest

from consumer.digest.sender import ATTEMPTS, WindowSender
from consumer.digest.summary import Summary
from consumer.digest.tables import MAX_DROPPED, State
from consumer.digest.windows import Window, window_at
from consumer.store import open_store
from consumer.store.migrations import MIGRATIONS
from schemas.errors import StoreError
from tests.support.digest_support import (
    ALICE,
    OPS,
    day,
    digests_for,
    failure,
    login,
    make_config,
    store_events,
    totals,
)
from tests.support.fakes import Outbox
from tests.support.smtp_server import html_part, text_part


def outbox(digests: WindowSender) -> Outbox:
    assert isinstance(digests.mailer, Outbox)
    return digests.mailer


def day0(digests: WindowSender) -> Window:
    return window_at(digests.schedule, day(0, 1))


# -- item 8: dropped has no bound on the wire ---------------------------------------------


def test_huge_dropped_counters_are_stored_bounded_and_summed(digests: WindowSender) -> None:
    huge = [
        login(day(0, 2), "web-1", "a", dropped=2**64 - 1),  # SQLite: OverflowError on bind
        login(day(0, 2), "web-1", "b", dropped=2**63),
        failure(day(0, 2), "db-1", "c", "203.0.113.9"),
        login(day(0, 2), "db-1", "d", dropped=2**62),  # two of these overflowed SUM()
        login(day(0, 2), "db-1", "e", dropped=2**62),
        login(day(0, 2), "web-2", "f", dropped=-7),  # below the type's bound: none
        *[login(day(0, 3), "flood-1", f"u{i}", dropped=2**62) for i in range(2000)],
    ]
    store_events(digests, huge, day(0, 15))
    ops = digests.summaries(day0(digests), dead=0)[OPS]
    assert ops.total == 2006
    assert ops.dropped.rows == (("flood-1", 2000 * MAX_DROPPED), ("db-1", 2 * MAX_DROPPED),
                                ("web-1", 2 * MAX_DROPPED))  # fmt: skip
    assert ops.dropped_events == 2004 * MAX_DROPPED
    assert {h.host: h.dropped for h in ops.hosts.rows}["web-2"] == 0
    assert digests.send_window(day0(digests), day(1, 0.1)) == 2
    assert totals(outbox(digests).text(OPS))["events dropped by host spools"] == str(
        2004 * MAX_DROPPED
    )


def test_a_store_holding_huge_dropped_counters_is_clamped_on_upgrade(
    store_url: str,
) -> None:
    """Rows an older loginwatch stored (two 2^62 overflowed SQLite's SUM for good)."""
    with open_store(store_url, MIGRATIONS[:4]) as old:
        for n in range(2):
            old.db.execute(
                "INSERT INTO digest_event (event_id, at, host, username, kind, client_ip,"
                " rhost, auth_method, dropped, audience) VALUES (?, ?, 'db-1', 'bob',"
                " 'login', '', '', '', ?, ?)",
                (f"old{n}", int(day(0, 2).timestamp()), 2**62, OPS),
            )
    digests = digests_for(make_config(store_url), Outbox())
    try:
        ops = digests.summaries(day0(digests), dead=0)[OPS]
        assert (ops.total, ops.dropped_events) == (2, 2 * MAX_DROPPED)
        assert digests.send_window(day0(digests), day(1, 0.1)) == 2  # Alice: all quiet
    finally:
        digests.store.store.close()


def broken_first_window(
    digests: WindowSender, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> list[Window]:
    """Make ``day0``'s aggregation fail with ``error``; the windows asked for."""
    made = digests.summaries
    asked: list[Window] = []

    def summaries(window: Window, dead: int | None) -> dict[str, Summary]:
        asked.append(window)
        if window == day0(digests):
            raise error
        return made(window, dead)

    monkeypatch.setattr(digests, "summaries", summaries)
    return asked


@pytest.mark.parametrize(
    "error",
    [
        StoreError("SQLite store: OperationalError: integer overflow"),
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        ValueError("year 292277026596 is out of range"),
    ],
)
def test_a_window_that_cannot_be_made_fails_alone(
    digests: WindowSender,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    store_events(digests, [login(day(0, 2), "web-1")], day(0, 3))
    store_events(digests, [login(day(1, 2), "web-1")], day(1, 3))
    broken_first_window(digests, monkeypatch, error)
    first, second = day0(digests), window_at(digests.schedule, day(1, 1))
    caplog.set_level(logging.WARNING, "loginwatch.digest")
    for n in range(1, ATTEMPTS):
        assert digests.send_window(first, day(2, 0.1)) == 0
        assert digests.store.state(first, OPS) is State.SENDING, n  # tried again next tick
    assert digests.send_window(first, day(2, 0.1)) == 0
    assert digests.store.state(first, OPS) is State.FAILED
    assert digests.store.finished(first, digests.recipients)
    reason = f"{type(error).__name__}: {error}"
    assert f"digest {first.key} for {OPS} failed for good after {ATTEMPTS} tries: {reason}" in (
        caplog.messages
    )
    # The window after it goes out as usual.
    assert digests.send_window(second, day(2, 0.2)) == 2
    assert sorted(m["X-Loginwatch-Digest"] for m in outbox(digests).sent) == [second.key] * 2


def test_a_store_that_does_not_answer_is_an_outage_not_a_failed_window(
    digests: WindowSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_events(digests, [login(day(0, 2), "web-1")], day(0, 3))
    broken_first_window(digests, monkeypatch, StoreError("PostgreSQL store: connection lost"))
    monkeypatch.setattr(digests.store, "healthy", lambda: False)
    for _ in range(ATTEMPTS + 1):
        with pytest.raises(StoreError, match="connection lost"):
            digests.send_window(day0(digests), day(1, 0.1))
    assert digests.store.state(day0(digests), OPS) is State.SENDING  # sent once it is back
    assert digests.failures == {}


# -- item 8: the dropped-hosts list -------------------------------------------------------


def test_the_dropped_hosts_list_is_cut_to_top(digests: WindowSender) -> None:
    forged = [login(day(0, 2), f"forged-{n:05d}.example", dropped=n + 1) for n in range(3000)]
    store_events(digests, forged, day(0, 3))
    ops = digests.summaries(day0(digests), dead=0)[OPS]
    top = digests.config.digest.top
    assert [h for h, _ in ops.dropped.rows] == [f"forged-{n:05d}.example"
                                                 for n in range(2999, 2999 - top, -1)]  # fmt: skip
    assert (ops.dropped.total, ops.dropped.more) == (3000, 3000 - top)
    assert ops.dropped_events == 3000 * 3001 // 2
    digests.send_window(day0(digests), day(1, 0.1))
    mail = next(m for m in outbox(digests).sent if m["To"] == OPS)
    text = text_part(mail)
    dropped = text.split("Events the hosts' spools had to drop", 1)[1].split("\n\n", 1)[0]
    assert f"... and {3000 - top} more hosts" in dropped
    assert dropped.count("forged-") == top
    assert totals(text)["events dropped by host spools"] == str(3000 * 3001 // 2)
    html = html_part(mail).split("Dropped by host spools", 1)[1].split("</table>\n", 2)
    assert html[0].count("forged-") == top and f"and {3000 - top} more hosts" in html[1]
    # Bounded by `top`, not by the 3,000 hosts (their rows alone would be ~1 MB of HTML):
    # ~64 KiB at top = 20, most of it the heat-map's table cells.
    assert len(mail.as_bytes()) < 128 * 1024


# -- item 7: the host's clock -------------------------------------------------------------

ARRIVAL = day(1, 3)  # 10:00 Berlin on day 1


def dated(digests: WindowSender) -> dict[str, datetime]:
    """Events whose host gave a time far from ARRIVAL, on both sides; host -> its time."""
    times = {
        "behind-3d": ARRIVAL - timedelta(days=3),  # before day 0 even began
        "into-sent": day(0, 5),  # into day 0's window, already sent
        "ahead-5y": ARRIVAL + timedelta(days=5 * 365 + 2),
        "ahead-max": datetime(2262, 4, 10, 23, 59, 59, tzinfo=UTC),  # the wire's latest
        "behind-min": datetime(1970, 1, 1, tzinfo=UTC),  # the wire's earliest
        "ahead-2h": ARRIVAL + timedelta(hours=2),  # (a naive time is a decode error)
        "ahead-2min": ARRIVAL + timedelta(minutes=2),  # within the tolerance
        "on-time": ARRIVAL - timedelta(minutes=1),
        "late-1h": ARRIVAL - timedelta(hours=1),  # in this window: counted at its own time
    }
    store_events(digests, [login(t, h, "root") for h, t in times.items()], ARRIVAL)
    return times


def test_a_host_cannot_date_an_event_out_of_the_window_it_arrived_in(digests: WindowSender) -> None:
    store_events(digests, [login(day(0, 2), "web-1")], day(0, 3))
    assert digests.send_window(day0(digests), day(1, 0.1)) == 2
    sent_before = digests.summaries(day0(digests), dead=0)[OPS]
    times = dated(digests)
    assert digests.summaries(day0(digests), dead=0)[OPS] == sent_before  # nothing back-dated in
    arrived = window_at(digests.schedule, ARRIVAL)
    ops = digests.summaries(arrived, dead=0)[OPS]
    assert ops.total == len(times)
    for later in (day(2, 1), day(5 * 365, 1)):
        assert digests.summaries(window_at(digests.schedule, later), dead=0)[OPS].total == 0
    # Listed at their arrival when the host's time is outside the window, else at their own.
    at = {r.host: r.at for r in ops.root.rows}
    assert (at["on-time"], at["late-1h"]) == (times["on-time"], times["late-1h"])
    assert at["ahead-2min"] == ARRIVAL
    assert {at[h] for h in ("behind-3d", "into-sent", "ahead-5y", "ahead-max", "behind-min",
                            "ahead-2h")} == {ARRIVAL}  # fmt: skip


def test_a_host_clock_more_than_five_minutes_off_is_named(digests: WindowSender) -> None:
    dated(digests)
    arrived = window_at(digests.schedule, ARRIVAL)
    ops = digests.summaries(arrived, dead=0)[OPS]
    off = {c.host: (c.behind, c.ahead, c.events) for c in ops.clocks.rows}
    assert set(off) == {"behind-3d", "into-sent", "ahead-5y", "ahead-max", "behind-min",
                        "ahead-2h", "late-1h"}  # fmt: skip
    assert off["behind-3d"] == (-3 * 86400, 0, 1)
    assert off["ahead-2h"] == (0, 7200, 1)
    assert digests.send_window(arrived, day(2, 0.1)) == 2
    text = outbox(digests).text(OPS)
    section = text.split("Host clocks more than 5 min off", 1)[1].split("\n\n", 1)[0]
    notes = dict(re.findall(r"^  (\S+)\s+(host clock off by .+)$", section, re.M))
    assert notes["behind-3d"] == (
        "host clock off by 3 d (behind the arrival time, or the event waited in the"
        " host's spool); 1 event(s)"
    )
    assert notes["ahead-5y"] == "host clock off by 5 y 2 d (ahead of the arrival time); 1 event(s)"
    assert notes["ahead-2h"].startswith("host clock off by 2 h (ahead")
    assert "ahead-2min" not in section and "on-time" not in section
    mail = next(m for m in outbox(digests).sent if m["To"] == OPS)
    html = html_part(mail).split("Host clocks more than 5 min off", 1)[1]
    assert "<td>host clock off by 3 d (behind the arrival time" in html
    # Alice's routes cover web-* only: none of these hosts is hers.
    assert "Host clocks" not in outbox(digests).text(ALICE)


def test_the_clock_list_is_cut_to_top(digests: WindowSender) -> None:
    ahead = [login(ARRIVAL + timedelta(hours=n + 1), f"h{n:04d}") for n in range(500)]
    store_events(digests, ahead, ARRIVAL)
    ops = digests.summaries(window_at(digests.schedule, ARRIVAL), dead=0)[OPS]
    assert (len(ops.clocks.rows), ops.clocks.total) == (digests.config.digest.top, 500)
    digests.send_window(window_at(digests.schedule, ARRIVAL), day(2, 0.1))
    assert f"... and {500 - digests.config.digest.top} more hosts" in outbox(digests).text(OPS)


def test_events_stored_before_the_upgrade_read_as_on_time(store_url: str) -> None:
    with open_store(store_url, MIGRATIONS[:4]) as old:
        old.db.execute(
            "INSERT INTO digest_event (event_id, at, host, username, kind, client_ip, rhost,"
            " auth_method, dropped, audience) VALUES ('old', ?, 'web-1', 'bob', 'login', '',"
            " '', '', 0, ?)",
            (int(day(0, 2).timestamp()), OPS),
        )
    with open_store(store_url) as new:
        assert new.db.execute("SELECT arrived_at, host_at FROM digest_event") == [
            (int(day(0, 2).timestamp()), int(day(0, 2).timestamp()))
        ]
        ops = digests_for(make_config(store_url), Outbox())
        try:
            assert ops.summaries(day0(ops), dead=0)[OPS].clocks.total == 0
        finally:
            ops.store.store.close()
