"""The digest side is wired by its constructors: the window sender always has a real lease."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from consumer.digest.lease import Lease, LeaseLost
from consumer.digest.mail import DigestRenderer
from consumer.digest.sender import WindowSender
from consumer.digest.tables import DigestStore, State
from consumer.digest.windows import window_at
from consumer.store import open_store
from tests.support.digest_support import ALICE, OPS, day, login, make_config, no_dns, store_events
from tests.support.fakes import Outbox


def test_a_window_sender_cannot_be_built_without_a_lease(tmp_path: Path) -> None:
    config = make_config(str(tmp_path / "lw.db"))
    store = open_store(config.store.url)
    try:
        with pytest.raises(TypeError, match="lease"):
            cast(Any, WindowSender)(config, DigestStore(store), store, Outbox(),
                                    DigestRenderer(config), no_dns)  # fmt: skip
    finally:
        store.close()


def test_a_sender_whose_lease_another_scheduler_holds_sends_nothing(tmp_path: Path) -> None:
    config = make_config(str(tmp_path / "lw.db"))
    store = open_store(config.store.url)
    events = DigestStore(store)
    holder = Lease(events, "holder", ttl=60)
    assert holder.acquire()
    outbox = Outbox()
    sender = WindowSender(config, events, store, outbox, DigestRenderer(config), no_dns,
                          Lease(events, "standby", ttl=60), dead_count=lambda: None)  # fmt: skip
    store_events(sender, [login(day(0, 2), "web-1")], day(0, 3))
    window = window_at(sender.schedule, day(0, 1))
    try:
        with pytest.raises(LeaseLost, match="standby lost the scheduler lease"):
            sender.send_window(window, day(1, 0.1))
        assert outbox.sent == []
        assert holder.holder() == "holder"
        holder.release()  # a clean shutdown: the standby takes over at once
        assert sender.send_window(window, day(1, 0.2)) == 2
        assert sender.store.state(window, OPS) is State.SENT
    finally:
        store.close()


def test_one_recipients_summaries_are_a_parameter_not_a_setting(tmp_path: Path) -> None:
    config = make_config(str(tmp_path / "lw.db"))
    store = open_store(config.store.url)
    events = DigestStore(store)
    sender = WindowSender(config, events, store, Outbox(), DigestRenderer(config), no_dns,
                          Lease(events, "t", ttl=60), dead_count=lambda: None)  # fmt: skip
    window = window_at(sender.schedule, day(0, 1))
    try:
        assert list(sender.summaries(window, 0, [ALICE])) == [ALICE]
        assert sorted(sender.summaries(window, 0)) == sorted([OPS, ALICE])
        assert sender.recipients == tuple(sorted([OPS, ALICE]))
    finally:
        store.close()
