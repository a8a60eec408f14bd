"""Alert lanes in the worker: the deliveries taken round robin, and how long each lane waits.

RabbitMQ hashes each speaker (the broker user its routing key must begin with) onto one lane
(``schemas/topology.py``); the worker consumes the shared queue and every lane, each with a
prefetch of its own. ``FairQueue`` holds what arrived, one FIFO per queue, and the pipeline
thread takes its batches round robin across them: a lane with a backlog adds at most one
delivery per turn ahead of another lane's, never its whole prefetch.

``Probes`` watch the age of the oldest alert in each lane, which RabbitMQ does not tell
(quorum queues keep no head timestamp, and a message's own timestamp is its sender's
clock). Every ``PROBE_EVERY_S`` the worker publishes a probe into each queue, under its own
broker user (which the broker checks, so no host can forge one) and stamped with its own
clock; when a probe's turn in the pipeline comes, its wait is what any alert entering the
lane with it waited. ``wait(queue)`` is the larger of the last probe's wait and the age of
this worker's oldest probe not seen out yet, so a lane that stopped moving shows a growing
age at once. With several workers each sees about every other worker's probes; a probe
another worker took counts as out when this one sees a later probe come out (a queue is
FIFO), so the age may read up to about ``PROBE_EVERY_S`` high there.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from consumer.broker.delivery import Delivery
from consumer.core import metrics
from schemas import topology

PROBE_EVERY_S: Final = 5.0
HEADER_PROBE: Final = "x-loginwatch-probe"  # the probe's send time, epoch milliseconds


class FairQueue:
    """Deliveries waiting for the pipeline thread, one FIFO per queue, taken round robin.
    Thread-safe: the connection's thread puts, the pipeline thread takes."""

    def __init__(self) -> None:
        self._ready: Final = threading.Condition()
        self._waiting: dict[str, deque[Delivery]] = {}
        self._turns: deque[str] = deque()  # queues with deliveries waiting, in turn order
        self._closed = False

    def put(self, delivery: Delivery) -> None:
        with self._ready:
            lane = self._waiting.setdefault(delivery.queue, deque())
            if not lane:
                self._turns.append(delivery.queue)
            lane.append(delivery)
            self._ready.notify()

    def close(self) -> None:
        """What waits is still taken; then ``take`` returns None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def remove(self, unwanted: Callable[[Delivery], bool]) -> list[Delivery]:
        """Take out every waiting delivery ``unwanted`` says yes to (the rest keep their
        turns); returns them."""
        with self._ready:
            gone: list[Delivery] = []
            for queue in list(self._waiting):
                lane = self._waiting[queue]
                gone += [d for d in lane if unwanted(d)]
                self._waiting[queue] = deque(d for d in lane if not unwanted(d))
            self._turns = deque(q for q in self._turns if self._waiting[q])
            return gone

    def take(self, limit: int) -> list[Delivery] | None:
        """At least one delivery (waiting for it), at most ``limit``: one from each queue
        in turn; None once closed and empty."""
        with self._ready:
            while not self._turns and not self._closed:
                self._ready.wait()
            batch: list[Delivery] = []
            while self._turns and len(batch) < limit:
                queue = self._turns.popleft()
                lane = self._waiting[queue]
                batch.append(lane.popleft())
                if lane:
                    self._turns.append(queue)
            return batch or None


def is_probe(delivery: Delivery, own_user: str | None) -> bool:
    """A probe of ours: our own broker user (checked by the broker), the probe type."""
    return (
        own_user is not None
        and delivery.user_id == own_user
        and delivery.type == topology.PROBE_TYPE
        and isinstance(delivery.headers.get(HEADER_PROBE), int)
    )


def probe_headers(now: float) -> dict[str, Any]:
    return {HEADER_PROBE: int(now * 1000)}


def probe_sent_at(headers: Mapping[str, Any]) -> float:
    stamp = headers.get(HEADER_PROBE)
    return stamp / 1000 if isinstance(stamp, int) else 0.0


class Probes:
    """The probes of ``queues``: when this worker sent them, what came out, and each
    queue's wait (see the module docstring). Thread-safe; ``now`` is epoch seconds."""

    def __init__(self, queues: tuple[str, ...]) -> None:
        self.queues = queues
        self._lock = threading.Lock()
        self._out: dict[str, deque[float]] = {q: deque() for q in queues}  # sent, not seen
        self._last: dict[str, float] = dict.fromkeys(queues, 0.0)
        self._next = 0.0

    def due(self, now: float) -> bool:
        """Whether the next round of probes is due (and, if so, counts it as sent now)."""
        with self._lock:
            if now < self._next:
                return False
            self._next = now + PROBE_EVERY_S
            return True

    def sent(self, queue: str, now: float) -> None:
        with self._lock:
            out = self._out[queue]
            out.append(now)
            if len(out) > 1000:  # a lane that never moves: its oldest probe is what counts
                del out[1]

    def arrived(self, queue: str, sent_at: float, now: float) -> None:
        """A probe sent at ``sent_at`` (by any worker) came out of ``queue`` at ``now``."""
        with self._lock:
            if queue not in self._out:
                return
            self._last[queue] = max(0.0, now - sent_at)
            out = self._out[queue]
            while out and out[0] <= sent_at:
                out.popleft()

    def wait(self, queue: str, now: float) -> float:
        """How long the oldest alert has been waiting in ``queue``, as far as probes tell."""
        with self._lock:
            out = self._out.get(queue)
            oldest = now - out[0] if out else 0.0
            return max(self._last.get(queue, 0.0), oldest)

    def report(self, now: float) -> None:
        for queue in self.queues:
            metrics.lane_wait(queue, self.wait(queue, now))
