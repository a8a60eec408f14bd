"""How the worker acks a settled batch: one frame for a run of delivery tags, never past a gap.

An AMQP ``multiple`` ack covers every unacked delivery up to its tag, so it is only safe when
each of them is settled. A delivery the pipeline did not start (it stays unacked and comes back
when the connection closes) must never be swept up by a later batch's ack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from consumer.alerts.pipeline import Settlement, Verdict
from consumer.alerts.worker import Worker
from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery
from consumer.broker.runtime import Link
from schemas import topology
from schemas.config import parse_config

DONE = Settlement(Verdict.DONE, "1 decision(s)", "e")


@dataclass
class RecordingBroker:
    generation: int = 1
    user: str = "central"
    acks: list[tuple[int, bool]] = field(default_factory=list)

    def ack(self, delivery: Delivery, *, through: bool = False) -> None:
        self.acks.append((delivery.tag, through))


def worker_on(broker: RecordingBroker) -> Worker:
    worker = Worker(parse_config('[broker]\nurl = "amqp://127.0.0.1/"'))
    worker.runtime.link = Link(cast(Broker, broker), (topology.ALERTS_QUEUE,))
    return worker


def settle(worker: Worker, *tags: int, generation: int = 1) -> None:
    batch = [(Delivery(tag, b"", "login", redelivered=False, generation=generation,
                  queue=topology.ALERTS_QUEUE), DONE)
             for tag in tags]  # fmt: skip
    worker._busy += len(batch)
    worker._settle(batch)


def test_a_run_of_tags_is_acked_with_one_frame() -> None:
    broker = RecordingBroker()
    worker = worker_on(broker)
    settle(worker, 1, 2, 3)
    settle(worker, 4)
    assert broker.acks == [(3, True), (4, True)]


def test_after_a_gap_each_delivery_is_acked_alone() -> None:
    broker = RecordingBroker()
    worker = worker_on(broker)
    settle(worker, 1, 2)
    settle(worker, 4, 5)  # 3 was not started: it must stay unacked
    settle(worker, 6)
    assert broker.acks == [(2, True), (4, False), (5, False), (6, False)]


def test_deliveries_of_a_lost_connection_are_not_acked() -> None:
    broker = RecordingBroker(generation=2)
    worker = worker_on(broker)
    settle(worker, 1, 2, generation=1)
    assert broker.acks == []
    assert worker._busy == 0
