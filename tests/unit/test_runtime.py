"""The consumer runtime with a fake broker: batched acks, generations, reconnects, signals."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from typing import cast

from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery
from consumer.broker.runtime import BACKOFF_S, Link, Runtime, StopFlag
from schemas.errors import BrokerError, QueueMissing

QUEUE = "loginwatch.alerts"


@dataclass
class FakeBroker:
    """Records acks; ``fail`` holds errors that the next ``connect`` calls raise."""

    generation: int = 1
    fail: list[Exception] = field(default_factory=list)
    acks: list[tuple[int, bool]] = field(default_factory=list)
    closed: int = 0

    def connect(self) -> None:
        if self.fail:
            raise self.fail.pop(0)

    def consume(self, _queue: str, _prefetch: int, _take: object) -> str:
        return "ctag"

    def ack(self, delivery: Delivery, *, through: bool = False) -> None:
        self.acks.append((delivery.tag, through))

    def process_events(self, _seconds: float) -> None:
        pass

    def held(self, _queue: str) -> tuple[int, float]:
        return 0, 0.0

    def close(self) -> None:
        self.closed += 1


def deliveries(*tags: int, generation: int = 1, queue: str = QUEUE) -> list[Delivery]:
    return [Delivery(t, b"", "login", redelivered=False, generation=generation, queue=queue)
            for t in tags]  # fmt: skip


def test_the_next_run_of_tags_is_one_frame() -> None:
    broker = FakeBroker()
    link = Link(cast(Broker, broker), (QUEUE,))
    link.ack(deliveries(1, 2, 3))
    link.ack(deliveries(4))
    link.ack([])
    assert broker.acks == [(3, True), (4, True)]


def test_after_a_gap_every_delivery_is_acked_alone_for_the_rest_of_the_connection() -> None:
    broker = FakeBroker()
    link = Link(cast(Broker, broker), (QUEUE,))
    link.ack(deliveries(1, 3))  # 2 is still unsettled: a frame through 3 would ack it
    link.ack(deliveries(4, 5))
    assert broker.acks == [(1, False), (3, False), (4, False), (5, False)]
    fresh = Link(cast(Broker, broker), (QUEUE,))  # a new connection counts from 1 again
    fresh.ack(deliveries(1, 2))
    assert broker.acks[-1] == (2, True)


def test_each_queue_acks_the_runs_of_its_own_tags() -> None:
    """Each queue is consumed on a channel of its own, so each counts its tags from 1: a
    batch that mixes two lanes is one frame per lane."""
    broker = FakeBroker()
    lane = "loginwatch.alerts.3"
    link = Link(cast(Broker, broker), (QUEUE, lane))
    link.ack([*deliveries(1, 2), *deliveries(1, queue=lane), *deliveries(3)])
    link.ack(deliveries(2, 3, queue=lane))
    assert broker.acks == [(3, True), (1, True), (3, True)]


def test_a_delivery_is_current_only_on_its_own_connection() -> None:
    link = Link(cast(Broker, FakeBroker(generation=2)), (QUEUE,))
    assert link.current(deliveries(1, generation=2)[0])
    assert not link.current(deliveries(1, generation=1)[0])


class Handler:
    """Connects at each tick it is not connected; stops after ``ticks`` connected ticks."""

    def __init__(self, ticks: int) -> None:
        self.ticks = ticks
        self.troubles: list[tuple[str, float, bool]] = []
        self.finished = 0

    def take(self, delivery: Delivery) -> None:
        pass

    def tick(self, runtime: Runtime) -> int | None:
        link = runtime.link or runtime.connect()
        link.pump(0)
        self.ticks -= 1
        if self.ticks <= 0:
            runtime.stop()
        return None

    def finish(self, _link: Link) -> None:
        self.finished += 1

    def trouble(self, error: Exception, delay: float, connected: bool) -> int | None:
        self.troubles.append((str(error), delay, connected))
        return None


class Sleepless(StopFlag):
    """Records the backoff instead of sleeping it."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def runtime_for(broker: FakeBroker) -> tuple[Runtime, list[float]]:
    flag = Sleepless()
    runtime = Runtime((QUEUE,), 10, connect=lambda: cast(Broker, broker),
                      log=logging.getLogger("test"), flag=flag)  # fmt: skip
    return runtime, flag.slept


def test_reconnects_with_a_growing_backoff_then_finishes_in_flight_and_stops() -> None:
    broker = FakeBroker(fail=[BrokerError("down")] * 6)
    handler = Handler(ticks=2)
    runtime, slept = runtime_for(broker)

    assert runtime.run(handler) == 0

    assert slept == [*BACKOFF_S, BACKOFF_S[-1]]
    assert handler.troubles[0] == ("down", 1.0, False)
    assert (handler.finished, runtime.link, broker.closed) == (1, None, 7)


def test_a_missing_queue_ends_the_run_with_status_1() -> None:
    broker = FakeBroker(fail=[QueueMissing("consume loginwatch.alerts: no queue")])
    runtime, slept = runtime_for(broker)
    assert runtime.run(Handler(ticks=5)) == 1
    assert slept == []


def test_sigterm_stops_the_runtime_and_the_old_handler_comes_back() -> None:
    runtime, _ = runtime_for(FakeBroker())
    before = signal.getsignal(signal.SIGTERM)
    with runtime.signals("stopping"):
        os.kill(os.getpid(), signal.SIGTERM)
        assert runtime.stopping()
    assert signal.getsignal(signal.SIGTERM) is before
