"""The scheduler's ``--once`` drain against a broker whose timing the test controls.

The real-broker path is in test_digest_e2e.py; this pins one race that a real broker shows only
now and then: the queue's ready count is 0 while deliveries are already on their way to us
(pika buffers what arrives during a blocking call until the next pump).
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
                self.on_delivery(Delivery(tag, body, "login", redelivered=False))
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
