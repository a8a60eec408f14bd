"""The digest's store and aggregation, the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumer.core.decisions import Action, Decision
from consumer.digest.sender import WindowSender
from consumer.digest.tables import State
from consumer.digest.windows import window_at
from schemas.errors import TransientSendError
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
from tests.support.smtp_server import text_part


def fill_day(digests: WindowSender) -> None:
    """One day (Thursday) of events on three hosts, plus one the next day."""
    bob = [login(day(0, h), "web-1") for h in (2, 3, 4)]
    root = login(day(0, 14), "web-2", "root", "198.51.100.7")  # 21:00 Berlin: after hours
    carol = login(day(0, 3), "db-1", "carol", "198.51.100.8", dropped=5)
    attack = [failure(day(0, 5) + timedelta(seconds=30 * i), "web-1", f"u{i}", "203.0.113.9")
              for i in range(4)]  # fmt: skip
    stray = failure(day(0, 6), "db-1", "admin", "203.0.113.50")
    tomorrow = login(day(1, 1), "web-1")
    store_events(digests, [*bob, root, carol, *attack, stray], day(0, 15))
    store_events(digests, [tomorrow], day(1, 2))
    store_events(digests, bob, day(0, 16))  # redelivered: stored once
    for e in (*bob, root, carol):  # as the worker records first-seen sources
        digests.store.store.observe(e.user, address=e.client_ip, network=None, country=None,
                                    event_id=e.id_hex, now=day(0, 1), host=e.host)  # fmt: skip
    silenced = Decision(action=Action.SILENCED, reason="maintenance", recipient=ALICE)
    digests.store.store.record_decisions(root.id_hex, [silenced], day(0, 1))


def test_a_window_is_counted_per_recipient(digests: WindowSender) -> None:
    fill_day(digests)
    window = window_at(digests.schedule, day(0, 1))
    summaries = digests.summaries(window, dead=2)
    ops, alice = summaries[OPS], summaries[ALICE]
    assert ops.kinds == {"login": 5, "failure": 5}
    assert [
        (h.host, h.events, h.logins, h.failures, h.root, h.dropped) for h in ops.hosts.rows
    ] == [
        ("web-1", 7, 3, 4, 0, 0),
        ("db-1", 2, 1, 1, 0, 5),
        ("web-2", 1, 1, 0, 1, 0),
    ]
    assert ops.dropped.rows == (("db-1", 5),) and ops.dropped_events == 5
    assert [r.user for r in ops.root.rows] == ["root"]
    assert [(r.user, r.host) for r in ops.outside.rows] == [("root", "web-2")]
    assert sorted(r.user for r in ops.first_seen.rows) == ["bob", "carol", "root"]
    assert [(s.address, s.events, s.users) for s in ops.failure_sources.rows] == [
        ("203.0.113.9", 4, 4),
        ("203.0.113.50", 1, 1),
    ]
    # 3 failures within 5 minutes: the 3rd and the 4th each complete a burst.
    assert [(b.address, b.bursts) for b in ops.bursts.rows] == [("203.0.113.9", 2)]
    assert ops.kept_counts == {}
    # Alice's route covers web-* only; the root login was silenced for her.
    assert alice.kinds == {"login": 4, "failure": 4}
    assert alice.hosts.total == 2 and alice.dropped.rows == ()
    assert sorted(r.user for r in alice.first_seen.rows) == ["bob", "root"]
    assert alice.kept_counts == {"silenced": 1}
    assert [(k.action, k.user) for k in alice.kept.rows] == [("silenced", "root")]
    # The heat-map: web-1's events in the columns of their hours (09:00, 10:00, 11:00, 12:00).
    web1 = ops.hosts.rows[0]
    assert len(web1.cells) == 24 and sum(web1.cells) == 7
    assert web1.cells[2:6] == (1, 1, 1, 4)


def test_each_recipient_gets_one_digest_per_window(digests: WindowSender) -> None:
    fill_day(digests)
    outbox: Outbox = digests.mailer  # type: ignore[assignment]
    window = window_at(digests.schedule, day(0, 1))
    outbox.fail.append(TransientSendError("421 try later"))
    with pytest.raises(TransientSendError):
        digests.send_window(window, day(1, 0.1))
    assert digests.store.state(window, ALICE) is State.SENDING
    assert digests.send_window(window, day(1, 0.2)) == 2
    assert digests.send_window(window, day(1, 0.3)) == 0
    by_to = {m["To"]: m for m in outbox.sent}
    assert sorted(by_to) == [ALICE, OPS]
    assert totals(text_part(by_to[OPS]))["events"] == "10"
    assert totals(text_part(by_to[ALICE]))["events"] == "8"
    assert by_to[OPS]["Message-ID"] != by_to[ALICE]["Message-ID"]
    assert digests.store.state(window, OPS) is State.SENT


def test_a_recorded_delivery_is_only_marked(digests: WindowSender) -> None:
    """The scheduler died after the sent log was written: no second mail."""
    window = window_at(digests.schedule, day(0, 1))
    digests.store.open_window(window, [OPS], 0)
    assert digests.store.claim(window, OPS, "dead-scheduler", 0, 0)
    digests.store.store.record_sent(f"digest:{window.key}:{OPS}", day(1))
    digests.send_window(window, day(1, 0.1))
    outbox: Outbox = digests.mailer  # type: ignore[assignment]
    assert [m["To"] for m in outbox.sent] == [ALICE]
    assert digests.store.state(window, OPS) is State.SENT


def test_empty_windows_are_quiet_or_skipped(store_url: str) -> None:
    quiet = digests_for(make_config(store_url), Outbox())
    window = window_at(quiet.schedule, day(3))
    assert quiet.send_window(window, day(4, 0.1)) == 2
    outbox: Outbox = quiet.mailer  # type: ignore[assignment]
    assert "All quiet" in text_part(outbox.sent[0])
    assert "all quiet" in outbox.sent[0]["Subject"]
    quiet.store.store.close()
    skip = digests_for(make_config(store_url, digest='empty = "skip"'), Outbox())
    later = window_at(skip.schedule, day(5))
    assert skip.send_window(later, day(6, 0.1)) == 0
    assert skip.store.state(later, OPS) is State.SKIPPED
    skip.store.store.close()


def test_the_lease_has_one_holder_until_it_expires(digests: WindowSender) -> None:
    store = digests.store
    assert store.acquire("a", 100.0, 30)
    assert not store.acquire("b", 110.0, 30)
    assert store.acquire("a", 120.0, 30)  # renewed
    assert store.holder(125.0) == "a"
    assert not store.acquire("b", 149.0, 30)
    assert store.acquire("b", 151.0, 30)  # a stopped renewing
    store.release("b")
    assert store.holder(152.0) is None
    assert store.acquire("a", 152.0, 30)


def test_states_move_once(digests: WindowSender) -> None:
    store = digests.store
    window = window_at(digests.schedule, day(0))
    store.open_window(window, [OPS], 1.0)
    assert store.state(window, OPS) is State.OPEN
    assert store.claim(window, OPS, "a", 2.0, 0)
    assert not store.claim(window, OPS, "b", 3.0, 1.0)  # a is sending it right now
    assert store.claim(window, OPS, "a", 3.5, 1.0)  # a retries its own
    assert store.claim(window, OPS, "b", 9.0, 5.0)  # a's claim is older than the lease
    store.finish(window, OPS, State.SENT, 4.0)
    store.open_window(window, [OPS], 5.0)  # does not reopen
    assert not store.claim(window, OPS, "c", 16.0, 15.0)
    assert store.state(window, OPS) is State.SENT


def test_old_events_are_pruned(digests: WindowSender) -> None:
    fill_day(digests)
    assert digests.store.prune(day(0, 4.5)) == 4  # bob's 3 logins and carol's
    remaining = digests.store.db.execute("SELECT COUNT(*) FROM digest_event")
    assert int(remaining[0][0]) == 11 - 4
