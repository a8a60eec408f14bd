"""The scheduler's ``--once`` drain against brokers whose timing the tests control.

The real-broker path is in test_digest_e2e.py; these pin what a real broker shows only now
and then: the queue's ready count is 0 while deliveries are already on their way to us (pika
buffers what arrives during a blocking call until the next pump), and a quorum queue that
checks deliveries out to us and never sends them until the connection closes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from consumer.broker import Broker
from consumer.delivery import Delivery, QueueState
from consumer.digest.scheduler import Scheduler
from schemas.event import encode
from tests.digest_support import day, digests_for, login, make_config


class InFlightBroker:
    """Holds ``events`` back until the queue's count has been asked for once, then hands
    them over on the next pump, reporting 0 ready all along (they are ours, unacked)."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.in_flight = bodies
        self.asked = False
        self.acked: list[int] = []
        self.on_delivery: Callable[[Delivery], None] | None = None

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def consume(self, _queue: str, _prefetch: int, on_delivery: Callable[[Delivery], None]) -> str:
        self.on_delivery = on_delivery
        return "ctag"

    def process_events(self, _seconds: float) -> None:
        if self.asked and self.in_flight and self.on_delivery is not None:
            for tag, body in enumerate(self.in_flight, 1):
                self.on_delivery(Delivery(tag, body, "login", redelivered=False, user_id="guest"))
            self.in_flight = []

    def queue_state(self, name: str) -> QueueState:
        self.asked = True
        return QueueState(name, messages=0, consumers=1)

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery.tag)


def test_once_waits_for_deliveries_already_on_their_way(tmp_path: Path) -> None:
    config = make_config(str(tmp_path / "loginwatch.db"))
    digests = digests_for(config)
    events = [login(day(0, 1 + h), "web-1") for h in range(3)]
    broker = InFlightBroker([encode(e) for e in events])
    scheduler = Scheduler(
        config, digests, clock=lambda: day(0, 5), broker=lambda: cast(Broker, broker)
    )

    assert scheduler.run(once=True) == 0

    assert broker.acked == [1, 2, 3]
    stored = digests.store.db.execute("SELECT COUNT(*) FROM digest_event")
    assert stored[0][0] == len(events)


class StrandingQueue:
    """A queue whose first consumer gets only ``sent`` of its messages: the broker holds
    the rest as ours (not ready, never delivered) until that connection closes."""

    def __init__(self, bodies: list[bytes], sent: int) -> None:
        self.ready = bodies
        self.sent = sent
        self.connections = 0
        self.stored: list[bytes] = []

    def connect(self) -> Broker:
        self.connections += 1
        return cast(Broker, StrandingConnection(self))


class StrandingConnection:
    def __init__(self, queue: StrandingQueue) -> None:
        self.queue = queue
        self.to_send: list[bytes] = []
        self.held: list[bytes] = []
        self.on_delivery: Callable[[Delivery], None] | None = None

    def connect(self) -> None:
        pass

    def close(self) -> None:
        self.queue.ready = self.held + self.queue.ready

    def consume(self, _queue: str, _prefetch: int, on_delivery: Callable[[Delivery], None]) -> str:
        self.on_delivery = on_delivery
        taken, self.queue.ready = self.queue.ready, []
        cut = self.queue.sent if self.queue.connections == 1 else len(taken)
        self.to_send, self.held = taken[:cut], taken[cut:]
        return "ctag"

    def process_events(self, _seconds: float) -> None:
        assert self.on_delivery is not None
        for tag, body in enumerate(self.to_send, 1):
            self.on_delivery(Delivery(tag, body, "login", redelivered=False, user_id="guest"))
        self.to_send = []

    def queue_state(self, name: str) -> QueueState:
        return QueueState(name, messages=len(self.queue.ready), consumers=1)

    def ack(self, _delivery: Delivery) -> None:
        pass


def test_once_takes_back_deliveries_the_broker_checked_out_and_never_sent(
    tmp_path: Path,
) -> None:
    config = make_config(str(tmp_path / "loginwatch.db"))
    digests = digests_for(config)
    events = [login(day(0, 1 + h), "web-1", f"user{h}") for h in range(9)]
    queue = StrandingQueue([encode(e) for e in events], sent=5)
    scheduler = Scheduler(config, digests, clock=lambda: day(0, 5), broker=queue.connect)

    assert scheduler.run(once=True) == 0

    stored = digests.store.db.execute("SELECT COUNT(*) FROM digest_event")
    assert stored[0][0] == len(events)
    # The connection that took 5 was closed; the next took the 4 it held; a third took none.
    assert queue.connections == 3
