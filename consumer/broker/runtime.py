"""The consumer runtime: one broker connection at a time for a handler, until stopped.

``Runtime(queues, prefetch, connect=…).run(handler)`` calls ``handler.tick(runtime)`` in a
loop. A tick does the handler's work: it opens the connection with ``runtime.connect()``
when it wants one (the worker at once, the digest scheduler only while it holds its lease),
pumps it, settles what it took. Deliveries reach ``handler.take`` on the connection's thread.

What every consumer needs and no handler writes again:

- **Reconnecting.** A ``BrokerError`` (or whatever else the handler names in
  ``retry_on``) closes the connection — every unacked delivery goes back to its queue —
  and the loop starts over after a growing backoff (``BACKOFF_S``; it starts over once a
  tick ends connected). ``QueueMissing`` is no outage: exit status 1.
- **Stopping.** SIGTERM/SIGINT (``signals()``) or ``stop()`` end the loop after the
  current tick; ``handler.finish(link)`` then settles what is in flight, before the
  connection closes. Sleeps wake up at once.
- **Generations.** A delivery tag is only valid on the connection that issued it
  (``Link.current``): after a reconnect, a result that belongs to the lost connection is
  never acked on the new one, it simply comes back.
- **Several queues.** A runtime consumes each of its queues (the worker: the shared alerts
  queue and every lane) on a channel of its own with a prefetch of its own (``prefetch``,
  or the queue's in ``prefetches``), so one queue's backlog holds that many deliveries of
  the handler at most.
- **Batched acks.** ``Link.ack`` sends one frame (``multiple``) per queue for the part of a
  batch that is exactly the next run of that queue's delivery tags, one per delivery
  otherwise.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery
from consumer.core import metrics
from schemas import topology
from schemas.errors import BrokerError, QueueMissing

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class Handler(Protocol):
    """What a consumer does with the runtime's connection."""

    def take(self, delivery: Delivery) -> None:
        """A delivery arrived (on the connection's thread: keep it short)."""

    def tick(self, runtime: Runtime) -> int | None:
        """One turn of the loop; an exit status ends the run.

        Raises:
            BrokerError (or a ``retry_on`` error): reconnect after the backoff.
        """

    def finish(self, link: Link) -> None:
        """Stopping: settle what is in flight on ``link`` before it closes."""

    def trouble(self, error: Exception, delay: float, connected: bool) -> int | None:
        """Say that ``error`` ended the connection (``connected``: one was open) and that
        the next try comes in ``delay`` s; an exit status gives up instead."""


class StopFlag:
    """The stop flag, safe from any thread; ``sleep`` wakes up as soon as it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def sleep(self, seconds: float) -> None:
        self._event.wait(seconds)


class Link:
    """One open connection and its consumers on ``queues``; the ack bookkeeping is per
    connection and queue, as delivery tags are (they count from 1 on each channel)."""

    def __init__(
        self, broker: Broker, queues: tuple[str, ...], consumer_tags: tuple[str, ...] = ()
    ) -> None:
        self.broker = broker
        self.queues = queues
        self._consumer_tags = consumer_tags
        # Per queue: every delivery tag up to this one is acked; -1: unknown.
        self._acked_through = dict.fromkeys(queues, 0)

    def current(self, delivery: Delivery) -> bool:
        """``delivery`` came on this connection (its tag means something here)."""
        return delivery.generation == self.broker.generation

    def pump(self, seconds: float) -> None:
        """Run the connection (deliveries, heartbeats, handed-back work) for ``seconds``.

        Raises:
            BrokerError: the connection failed.
        """
        self.broker.process_events(seconds)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the connection's thread; callable from any thread.

        Raises:
            BrokerError: the connection is gone.
        """
        self.broker.call_soon(callback)

    def report(self) -> None:
        """Publish the unacked deliveries of this connection, per queue (metrics)."""
        for queue in self.queues:
            metrics.holding(queue, *self.broker.held(queue))

    def count(self, queue: str) -> int:
        """Ready messages in ``queue``, as the broker counts them.

        Raises:
            QueueMissing, BrokerError.
        """
        return self.broker.queue_state(queue).messages

    def cancel(self) -> None:
        """Stop new deliveries (those in flight stay ours to settle)."""
        for tag in self._consumer_tags:
            self.broker.cancel(tag)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Ack settled ``deliveries`` (in delivery order per queue, all of this connection):
        per queue, one frame when they are exactly the next run of its delivery tags (each
        one before them is settled already); one per delivery otherwise — after a skipped
        or requeued delivery, for the rest of this connection.

        Raises:
            BrokerError: the connection failed.
        """
        by_queue: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            by_queue.setdefault(delivery.queue, []).append(delivery)
        for queue, run in by_queue.items():
            self._ack_run(queue, run)
            # A probe of the worker's own is no event: no intake lag of its own.
            arrivals = (d.arrived for d in run if d.type != topology.PROBE_TYPE)
            metrics.acked(queue or self.queues[0], arrivals, time.time())

    def _ack_run(self, queue: str, run: list[Delivery]) -> None:
        tags = [d.tag for d in run]
        through = self._acked_through.get(queue, -1)
        if through >= 0 and tags == list(range(through + 1, through + 1 + len(tags))):
            self.broker.ack(run[-1], through=True)
            self._acked_through[queue] = tags[-1]
            return
        self._acked_through[queue] = -1
        for delivery in run:
            self.broker.ack(delivery)


class Runtime:
    """Runs a handler on one connection at a time to ``queues`` until stopped."""

    def __init__(
        self,
        queues: tuple[str, ...],
        prefetch: int,
        *,
        connect: Callable[[], Broker],
        retry_on: tuple[type[Exception], ...] = (BrokerError,),
        log: logging.Logger,
        flag: StopFlag | None = None,
        prefetches: Mapping[str, int] | None = None,
    ) -> None:
        """``queues``: consumed each with ``prefetch`` unacked deliveries at most, or what
        ``prefetches`` says for it;
        ``log``: the handler's own logger (what the runtime says is said in its name);
        ``flag``: the stop flag to obey (a test's may record its sleeps instead)."""
        self.queues = queues
        self.prefetch = prefetch
        self.prefetches = dict(prefetches or {})
        self._new_broker = connect
        self._retry_on = retry_on
        self.log = log
        self._flag = flag or StopFlag()
        self.link: Link | None = None  # read from other threads: replaced, never mutated
        self._handler: Handler | None = None

    def stop(self) -> None:
        """End the loop after the tick in flight; safe from any thread or signal handler."""
        self._flag.set()

    def stopping(self) -> bool:
        """Whether ``stop`` was asked for."""
        return self._flag.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less: ``stop`` wakes it up."""
        self._flag.sleep(seconds)

    def run(self, handler: Handler) -> int:
        """Tick ``handler`` until stopped or it returns an exit status; 0 when stopped."""
        self._handler = handler
        attempt = 0
        try:
            while not self.stopping():
                try:
                    status = handler.tick(self)
                    if status is not None:
                        return status
                    if self.link is not None:
                        attempt = 0
                        if self.stopping():
                            handler.finish(self.link)
                except QueueMissing as exc:
                    self.log.error("%s", exc)
                    return 1
                except self._retry_on as exc:
                    connected = self.link is not None
                    self.disconnect()
                    delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                    status = handler.trouble(exc, delay, connected)
                    if status is not None:
                        return status
                    attempt += 1
                    self.pause(delay)
        finally:
            self.disconnect()
        return 0

    def connect(self) -> Link:
        """Open a connection and consume each of ``queues`` on it.

        Raises:
            QueueMissing: a queue does not exist.
            BrokerError: unreachable, refused.
        """
        assert self._handler is not None, "connect() is for the handler being run"
        broker = self._new_broker()
        try:
            broker.connect()
            tags = tuple(broker.consume(q, self.prefetches.get(q, self.prefetch),
                                        self._handler.take) for q in self.queues)  # fmt: skip
        except BrokerError:
            broker.close()
            raise
        self.link = Link(broker, self.queues, tags)
        return self.link

    def messages(self, queue: str) -> int | None:
        """Ready messages in ``queue`` (the broker's count, through the open connection);
        None when not connected or the broker does not answer."""
        link = self.link
        if link is None:
            return None
        try:
            return link.count(queue)
        except BrokerError:
            return None

    def disconnect(self) -> None:
        """Close the connection, if any: its unacked deliveries go back to the queue."""
        link, self.link = self.link, None
        if link is not None:
            link.broker.close()

    @contextmanager
    def signals(self, note: str | None = None) -> Iterator[None]:
        """SIGTERM and SIGINT stop the runtime (logging ``note``) while inside; the
        handlers before are put back after. Only the main thread can take signals."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if note:
                self.log.info("%s: %s", signal.Signals(signum).name, note)
            self.stop()

        before = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
