"""The scheduler's intake against brokers and stores whose behaviour the tests control.

The real-broker path is in test_digest_e2e.py and test_digest_steady_intake.py; these pin
what a real broker shows only now and then: deliveries arrive over several pumps of one
connection (the first batch is not all there is), and the queue's ready count is 0 while
deliveries are already on their way to us (pika buffers what arrives during a blocking
call until the next pump). A store that fails on one row must not take the batch with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery, QueueState
from consumer.digest.scheduler import Scheduler
from consumer.digest.tables import EventRow
from consumer.store import Sighting
from schemas import topology
from schemas.errors import StoreError
from schemas.event import LoginEvent, encode
from tests.support.digest_support import day, digest_for, login, make_config


class ScriptedQueue:
    """A queue that hands its messages over in the chunks of ``script``, one chunk per pump
    of the connection, and keeps what a broker keeps: ready, unacked (per connection; given
    back when it closes), acked, and what was published to the dead queue."""

    def __init__(self, script: list[list[bytes]]) -> None:
        self.script = script
        self.connections = 0
        self.unacked: dict[int, bytes] = {}
        self.acked: list[bytes] = []
        self.dead: list[tuple[bytes, dict[str, Any]]] = []
        self.asked = False  # the ready count was asked for
        self.hold_until_asked = False
        self.on_idle: Callable[[], None] = lambda: None
        self.on_delivery: Callable[[Delivery], None] | None = None
        self.user_id = "guest"  # the broker user every delivery arrives from
        self._tag = 0

    def connect(self) -> Broker:
        self.connections += 1
        self._tag = 0
        return cast(Broker, ScriptedConnection(self))

    def ready(self) -> int:
        return sum(len(chunk) for chunk in self.script)


class ScriptedConnection:
    user = "guest"

    def __init__(self, queue: ScriptedQueue) -> None:
        self.q = queue

    def connect(self) -> None:
        pass

    def close(self) -> None:
        if self.q.unacked:  # the broker requeues what this connection never acked
            self.q.script.insert(0, list(self.q.unacked.values()))
            self.q.unacked.clear()

    def consume(self, _queue: str, _prefetch: int, on_delivery: Callable[[Delivery], None]) -> str:
        self.q.on_delivery = on_delivery
        return "ctag"

    def process_events(self, _seconds: float) -> None:
        q = self.q
        if not q.script or (q.hold_until_asked and not q.asked):
            q.on_idle()
            return
        assert q.on_delivery is not None
        for body in q.script.pop(0):
            q._tag += 1
            q.unacked[q._tag] = body
            q.on_delivery(
                Delivery(
                    q._tag,
                    body,
                    "login",
                    redelivered=False,
                    user_id=q.user_id,
                    queue=topology.DIGEST_QUEUE,
                )
            )

    def queue_state(self, name: str) -> QueueState:
        self.q.asked = True
        ready = self.q.ready() if name == topology.DIGEST_QUEUE else len(self.q.dead)
        return QueueState(name, messages=0 if self.q.hold_until_asked else ready, consumers=1)

    def ack(self, delivery: Delivery, *, through: bool = False) -> None:
        tags = [t for t in self.q.unacked if t == delivery.tag or (through and t < delivery.tag)]
        self.q.acked += [self.q.unacked.pop(t) for t in sorted(tags)]

    def held(self, _queue: str) -> tuple[int, float]:
        return len(self.q.unacked), 0.0

    def publish(self, _exchange: str, key: str, body: bytes, **kw: Any) -> None:
        assert key == topology.DEAD_QUEUE
        self.q.dead.append((body, kw["headers"]))


def stored(scheduler: Scheduler) -> set[str]:
    return {row[0] for row in scheduler.store.db.execute("SELECT event_id FROM digest_event")}


def batch(n: int, first: int = 0) -> list[LoginEvent]:
    return [login(day(0, 1 + i / 10), "web-1", f"user{i}") for i in range(first, first + n)]


def scheduler_for(tmp_path: Path, queue: ScriptedQueue) -> Scheduler:
    config = make_config(str(tmp_path / "loginwatch.db"))
    return digest_for(config, clock=lambda: day(0, 5), broker=queue.connect).scheduler()


def test_a_running_scheduler_stores_every_batch_on_one_connection(tmp_path: Path) -> None:
    """The daemon (no --once): three batches, quiet pumps between them, one connection."""
    events = batch(9)
    script = [[encode(e) for e in events[i : i + 3]] for i in (0, 3, 6)]
    queue = ScriptedQueue([script[0], [], script[1], [], [], script[2]])
    scheduler = scheduler_for(tmp_path, queue)
    queue.on_idle = scheduler.stop  # stop once the script is played out

    assert scheduler.run() == 0

    assert stored(scheduler) == {e.id_hex for e in events}
    assert (queue.unacked, queue.connections, len(queue.acked)) == ({}, 1, 9)


def test_once_stores_deliveries_that_arrive_after_the_first_batch(tmp_path: Path) -> None:
    """The CI failure once blamed on RabbitMQ "holding" 4 of 9 deliveries until the
    connection closed: they arrived after the first batch and went where nothing read
    them. --once stores all nine on its one connection, without reconnecting."""
    events = batch(9)
    queue = ScriptedQueue([[encode(e) for e in events[:5]], [encode(e) for e in events[5:]]])
    scheduler = scheduler_for(tmp_path, queue)

    assert scheduler.run(once=True) == 0

    assert stored(scheduler) == {e.id_hex for e in events}
    assert (queue.unacked, queue.connections) == ({}, 1)


def test_once_waits_for_deliveries_already_on_their_way(tmp_path: Path) -> None:
    """The ready count says 0 while the deliveries are already in pika's buffer."""
    events = batch(3)
    queue = ScriptedQueue([[encode(e) for e in events]])
    queue.hold_until_asked = True
    scheduler = scheduler_for(tmp_path, queue)

    assert scheduler.run(once=True) == 0

    assert stored(scheduler) == {e.id_hex for e in events}
    assert queue.unacked == {}


class FailingRows:
    """Wraps the store's ``add_events``: any transaction holding a row of ``bad`` raises
    what SQLite raises for an integer it cannot bind."""

    def __init__(self, scheduler: Scheduler, bad: set[str], error: Exception) -> None:
        self.real = scheduler.store.add_events
        self.bad, self.error = bad, error
        scheduler.store.add_events = self  # type: ignore[method-assign]

    def __call__(self, rows: Sequence[EventRow], sightings: Sequence[Sighting] = ()) -> None:
        if any(row[0] in self.bad for row in rows):
            raise self.error
        self.real(rows, sightings)


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        StoreError("insert: IntegrityError: value out of range"),
    ],
)
def test_an_event_that_cannot_be_stored_goes_dead_alone(tmp_path: Path, error: Exception) -> None:
    events = batch(5)
    queue = ScriptedQueue([[encode(e) for e in events]])
    scheduler = scheduler_for(tmp_path, queue)
    FailingRows(scheduler, {events[2].id_hex}, error)

    assert scheduler.run(once=True) == 0

    assert stored(scheduler) == {e.id_hex for e in events} - {events[2].id_hex}
    assert [body for body, _ in queue.dead] == [encode(events[2])]
    headers = queue.dead[0][1]
    assert "cannot store" in headers[topology.HEADER_REASON]
    assert type(error).__name__ in headers[topology.HEADER_REASON]
    assert headers[topology.HEADER_ORIGIN] == topology.DIGEST_QUEUE  # replay comes back here
    assert (queue.unacked, queue.connections, len(queue.acked)) == ({}, 1, 5)


def test_first_seen_that_cannot_be_recorded_takes_only_its_own_event(tmp_path: Path) -> None:
    events = batch(4)
    queue = ScriptedQueue([[encode(e) for e in events]])
    scheduler = scheduler_for(tmp_path, queue)
    real = scheduler.store.store.observe_all

    def observe_all(sightings: Sequence[Sighting], **kw: Any) -> Any:
        if any(s.event_id == events[1].id_hex for s in sightings):
            raise OverflowError("boom")
        return real(sightings, **kw)

    scheduler.store.store.observe_all = observe_all  # type: ignore[method-assign]

    assert scheduler.run(once=True) == 0

    assert [body for body, _ in queue.dead] == [encode(events[1])]
    # Its digest row and its first-seen are one transaction: neither is kept (a replay of
    # the dead message stores both); the other events of its batch are.
    assert stored(scheduler) == {e.id_hex for e in events} - {events[1].id_hex}
    assert queue.unacked == {}


def test_a_failing_store_sends_nothing_dead_and_keeps_every_delivery(tmp_path: Path) -> None:
    """The store is down (every write fails, the lease renewal too): that is no poison
    message, nothing goes dead, and nothing is acked — it all comes back later."""
    events = batch(3)
    queue = ScriptedQueue([[encode(e) for e in events]])
    scheduler = scheduler_for(tmp_path, queue)
    FailingRows(scheduler, {e.id_hex for e in events}, StoreError("disk I/O error"))
    renewals = 0

    def acquire(*_: object) -> bool:
        nonlocal renewals
        renewals += 1
        if renewals > 1:  # the first takes the lease; then the store goes down
            scheduler.stop()
            raise StoreError("disk I/O error")
        return True

    scheduler.store.acquire = acquire  # type: ignore[method-assign,assignment]

    scheduler.run(once=True)

    assert queue.dead == [] and queue.acked == []
    assert stored(scheduler) == set()
    assert queue.ready() == 3  # given back when the connection closed


def test_a_relays_reports_stored_by_the_scheduler_are_no_first_seen_votes(tmp_path: Path) -> None:
    """The scheduler records first-seen as the worker does: one relay reporting an address
    under two invented host names must not make it familiar on db-1 (first_seen_hosts = 2)."""
    config = make_config(str(tmp_path / "loginwatch.db"),
                         '[worker.host_users]\n"relay-dc1" = ["*.dc1.example.org"]\n')  # fmt: skip
    relayed = [login(day(0, 1 + n), f"{name}.dc1.example.org", "root", "203.0.113.66")
               for n, name in enumerate(("a", "b"))]  # fmt: skip
    queue = ScriptedQueue([[encode(e) for e in relayed]])
    queue.user_id = "relay-dc1"
    scheduler = digest_for(config, clock=lambda: day(0, 5), broker=queue.connect).scheduler()

    assert scheduler.run(once=True) == 0

    assert stored(scheduler) == {e.id_hex for e in relayed}
    seen = scheduler.store.store.observe("root", address="203.0.113.66", network=None,
                                         country=None, event_id="db-1-login", now=day(0, 6),
                                         host="db-1")  # fmt: skip
    assert seen.address  # still new on db-1: the relay's two reports were no votes
