"""The worker's fair intake across lanes, and the lane probes' arithmetic."""

from __future__ import annotations

import threading

from consumer.alerts.lanes import FairQueue, Probes, is_probe, probe_headers, probe_sent_at
from consumer.broker.delivery import Delivery
from schemas import topology


def delivery(queue: str, tag: int, **fields: object) -> Delivery:
    return Delivery(tag, b"", "k", redelivered=False, queue=queue, **fields)  # type: ignore[arg-type]


def test_queues_take_turns_and_each_keeps_its_order() -> None:
    fair = FairQueue()
    for tag in range(1, 6):
        fair.put(delivery("a", tag))
    fair.put(delivery("b", 1))
    fair.put(delivery("c", 1))
    batch = fair.take(4)
    assert batch is not None
    assert [(d.queue, d.tag) for d in batch] == [("a", 1), ("b", 1), ("c", 1), ("a", 2)]
    rest = fair.take(10)
    assert rest is not None
    assert [(d.queue, d.tag) for d in rest] == [("a", 3), ("a", 4), ("a", 5)]


def test_what_waits_is_taken_after_close_then_none() -> None:
    fair = FairQueue()
    fair.put(delivery("a", 1))
    fair.close()
    assert [d.tag for d in fair.take(5) or []] == [1]
    assert fair.take(5) is None


def test_take_waits_for_a_delivery() -> None:
    fair = FairQueue()
    got: list[list[Delivery] | None] = []
    taker = threading.Thread(target=lambda: got.append(fair.take(3)))
    taker.start()
    fair.put(delivery("a", 7))
    taker.join(5)
    assert [[d.tag for d in batch or []] for batch in got] == [[7]]


def test_remove_takes_out_only_what_is_asked_for() -> None:
    fair = FairQueue()
    for tag in (1, 2, 3):
        fair.put(delivery("a", tag))
    fair.put(delivery("b", 9))
    assert [d.tag for d in fair.remove(lambda d: d.tag in (2, 9))] == [2, 9]
    assert [d.tag for d in fair.take(10) or []] == [1, 3]


def test_only_our_own_user_makes_a_probe() -> None:
    headers = probe_headers(1000.5)
    ours = delivery("a", 1, user_id="central", type=topology.PROBE_TYPE, headers=headers)
    assert is_probe(ours, "central")
    assert probe_sent_at(ours.headers) == 1000.5
    host = delivery("a", 1, user_id="host-a", type=topology.PROBE_TYPE, headers=headers)
    assert not is_probe(host, "central")  # a host cannot make the lane look fresh
    assert not is_probe(delivery("a", 1, user_id="central", headers=headers), "central")


def test_a_lane_that_stopped_moving_shows_a_growing_wait() -> None:
    probes = Probes(("lane",))
    assert probes.due(100.0) and not probes.due(101.0)
    probes.sent("lane", 100.0)
    probes.arrived("lane", 100.0, 100.02)
    assert round(probes.wait("lane", 101.0), 3) == 0.02  # came out at once
    probes.sent("lane", 105.0)
    assert probes.wait("lane", 112.0) == 7.0  # not out yet: its age
    probes.arrived("lane", 105.0, 130.0)
    assert probes.wait("lane", 131.0) == 25.0  # the last probe's wait, until the next


def test_a_later_probe_of_another_worker_shows_ours_is_out() -> None:
    probes = Probes(("lane",))
    probes.sent("lane", 100.0)
    probes.arrived("lane", 101.0, 101.5)  # a probe sent after ours came out: ours did too
    assert probes.wait("lane", 200.0) == 0.5
