"""Which deliveries the pipeline thread takes as one batch (consumer/alerts/worker.py).

The deliveries that wait are decided together (``pipeline.process_batch``), at most
``HAND_BACK_BATCH`` of them; one the worker may not start (stopping, or its connection is
gone) is left unacked, so the broker gives it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from consumer.alerts.worker import HAND_BACK_BATCH, Worker
from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery
from consumer.broker.runtime import Link
from schemas import topology
from schemas.config import parse_config


@dataclass
class RecordingBroker:
    generation: int = 1
    user: str = "central"
    acks: list[tuple[int, bool]] = field(default_factory=list)

    def ack(self, delivery: Delivery, *, through: bool = False) -> None:
        self.acks.append((delivery.tag, through))


def worker_with(
    *tags: int,
    generation: int = 1,
    queue: str = topology.ALERTS_QUEUE,
    worker: Worker | None = None,
) -> Worker:
    if worker is None:
        worker = Worker(parse_config('[broker]\nurl = "amqp://127.0.0.1/"'))
        worker.runtime.link = Link(cast(Broker, RecordingBroker()), worker.queues)
    for tag in tags:
        worker.take(Delivery(tag, b"", "k", redelivered=False, generation=generation, queue=queue))
    return worker


def test_the_deliveries_that_wait_are_one_batch_of_at_most_hand_back_batch() -> None:
    worker = worker_with(*range(1, HAND_BACK_BATCH + 5))
    first = worker._next_batch()
    assert first is not None
    assert [d.tag for d in first] == list(range(1, HAND_BACK_BATCH + 1))
    rest = worker._next_batch()
    assert rest is not None
    assert [d.tag for d in rest] == list(range(HAND_BACK_BATCH + 1, HAND_BACK_BATCH + 5))
    assert worker._busy == HAND_BACK_BATCH + 4


def test_the_batch_before_the_end_is_still_decided() -> None:
    worker = worker_with(1, 2)
    worker._todo.close()
    batch = worker._next_batch()
    assert batch is not None
    assert [d.tag for d in batch] == [1, 2]
    assert worker._next_batch() is None


def test_nothing_is_started_when_stopping_or_stale() -> None:
    stale = worker_with(1, 2, generation=7)  # deliveries of a connection that is gone
    assert stale._next_batch() == []
    stopping = worker_with(3)
    stopping.stop()
    assert stopping._next_batch() == []
    assert (stale._busy, stopping._busy) == (0, 0)


def test_a_lane_with_a_backlog_adds_one_delivery_per_turn() -> None:
    """The flooded lane's whole prefetch waits, then one delivery arrives in another lane:
    it is in the next batch, second, not behind the backlog."""
    flooded, quiet = topology.lane_queue(2), topology.lane_queue(5)
    worker = worker_with(*range(1, 11), queue=flooded)
    worker_with(1, queue=quiet, worker=worker)
    batch = worker._next_batch()
    assert batch is not None
    assert [(d.queue, d.tag) for d in batch[:3]] == [(flooded, 1), (quiet, 1), (flooded, 2)]
    assert [d.tag for d in batch if d.queue == flooded] == list(range(1, 11))  # in order
