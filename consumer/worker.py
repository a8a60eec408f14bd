"""The worker's runtime: consume the alerts queue, run the pipeline, settle each delivery.

Threads: pika's BlockingConnection has no I/O thread, so the main thread only
pumps the connection (deliveries, heartbeats) and settles results; one pipeline
thread runs ``pipeline.process`` (DNS, store, SMTP may take seconds) and hands
each outcome back with ``Broker.call_soon``. A delivery is acked only after its
outcome is final: mailed and recorded, nothing to mail, or republished —
confirmed — to a retry queue (park) or the dead queue.

The broker going away is survived: deliveries not yet settled simply come back
(the delivery log keeps a mailed one from being mailed twice), and the worker
reconnects with a growing backoff. SIGTERM/SIGINT: stop taking deliveries,
finish the one in flight, close.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from consumer import metrics, pipeline
from consumer.broker import Broker
from consumer.delivery import Delivery
from consumer.pipeline import Settlement, Stages, Verdict
from consumer.stages.decode import Incoming, dead_id, effective_user, short
from schemas import topology
from schemas.config import Config, broker_user
from schemas.errors import BrokerError, PublishRefused, QueueMissing
from schemas.event import MAX_BODY

log = logging.getLogger("loginwatch.worker")

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
HAND_BACK_BATCH = 16


def republish_headers(delivery: Delivery, own_user: str | None, **extra: Any) -> dict[str, Any]:
    """The headers of a copy we republish under ``own_user``: the identity the message
    had on arrival (``HEADER_USER_ID``, "" for none), our own headers when it is one of
    our copies, then ``extra``.

    Nothing else of the original travels: a host's headers (a forged identity, attempt
    count, origin or reason) and the broker's ``x-death`` would read as ours on a copy
    under our user.
    """
    ours = own_user is not None and delivery.user_id == own_user
    headers = {k: delivery.headers[k] for k in topology.CENTRAL_HEADERS
               if ours and k in delivery.headers}  # fmt: skip
    headers[topology.HEADER_USER_ID] = (
        effective_user(delivery.user_id, delivery.headers, own_user) or ""
    )
    headers.update(extra)
    return headers


class Worker:
    """``Worker(config).run()``: consume until SIGTERM; returns the exit status."""

    def __init__(
        self,
        config: Config,
        build: Callable[[Config], Stages] = pipeline.build_stages,
        on_settle: Callable[[Settlement], None] | None = None,
    ) -> None:
        """``on_settle`` sees every outcome once it is settled (metrics, benchmarks)."""
        self.config = config
        self._on_settle = on_settle
        self.delays = config.worker.retry_delays
        self.own_user = broker_user(config.broker)
        self._build = build
        self._todo: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self._busy = 0  # deliveries the pipeline took and the main thread has not settled
        self._broker: Broker | None = None
        self._acked_through = 0  # every delivery tag up to this one is acked; -1: unknown
        self._ready = threading.Event()
        self._failed: BaseException | None = None

    def stopping(self) -> bool:
        with self._lock:
            return self._stopping

    def stop(self, *_: object) -> None:
        with self._lock:
            self._stopping = True

    def run(self) -> int:
        """Consume the alerts queue until stopped.

        Raises:
            StoreError, ConfigError: the stages could not be built.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        thread = threading.Thread(target=self._pipeline_thread, name="pipeline", daemon=True)
        thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed
        try:
            return self._connection_loop()
        finally:
            self._todo.put(None)
            thread.join(timeout=60)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the delivery in flight, then stopping", signal.Signals(signum).name)
        self.stop()

    def _connection_loop(self) -> int:
        attempt = 0
        while not self.stopping():
            broker = Broker(self.config.broker)
            try:
                broker.connect()
                tag = broker.consume(topology.ALERTS_QUEUE, self.config.worker.prefetch, self._take)
                self._broker = broker
                self._acked_through = 0  # delivery tags count from 1 on each channel
                log.info("consuming %s (prefetch %d)", topology.ALERTS_QUEUE,
                         self.config.worker.prefetch)  # fmt: skip
                attempt = 0
                while not self.stopping():
                    broker.process_events(0.5)
                    metrics.holding(topology.ALERTS_QUEUE, *broker.held())
                broker.cancel(tag)
                self._finish_in_flight(broker)
            except QueueMissing as exc:
                log.error("%s", exc)
                return 1
            except BrokerError as exc:
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                lost = "; unsettled deliveries come back" if self._broker is broker else ""
                log.warning("broker: %s%s; retry in %gs", exc, lost, delay)
                self._sleep(delay)
            finally:
                self._broker = None
                broker.close()
        log.info("stopped")
        return 0

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _finish_in_flight(self, broker: Broker) -> None:
        """Settle what the pipeline already started; the rest goes back to the queue on close."""
        while True:
            with self._lock:
                if self._busy == 0:
                    return
            broker.process_events(0.1)

    # -- main thread: deliveries in, outcomes settled ----------------------------

    def _take(self, delivery: Delivery) -> None:
        self._todo.put(delivery)

    def _settle(self, done: list[tuple[Delivery, Settlement]]) -> None:
        """Park or dead-letter what must move, then ack the batch (in delivery order)."""
        with self._lock:
            self._busy -= len(done)
        broker = self._broker
        settled: list[tuple[Delivery, Settlement]] = []
        for delivery, outcome in done:
            if broker is None or delivery.generation != broker.generation:
                continue  # its connection is gone: the broker redelivers it
            try:
                if outcome.verdict is Verdict.PARK:
                    self._park(broker, delivery, outcome)
                elif outcome.verdict is Verdict.DEAD:
                    self._dead(broker, delivery, outcome.reason, outcome.event_id)
            except _Requeued:
                continue
            settled.append((delivery, outcome))
        if broker is None or not settled:
            return
        self._ack(broker, [delivery for delivery, _ in settled])
        metrics.acked(topology.ALERTS_QUEUE, (d.timestamp for d, _ in settled), time.time())
        if self._on_settle is not None:
            for _, outcome in settled:
                self._on_settle(outcome)

    def _ack(self, broker: Broker, deliveries: list[Delivery]) -> None:
        """One ack frame for the batch when it is exactly the next run of delivery tags
        (each one before it is settled already); one per delivery otherwise — after a
        skipped or requeued delivery, for the rest of this connection."""
        tags = [d.tag for d in deliveries]
        first = self._acked_through + 1
        if self._acked_through >= 0 and tags == list(range(first, first + len(tags))):
            broker.ack(deliveries[-1], through=True)
            self._acked_through = tags[-1]
            return
        self._acked_through = -1
        for delivery in deliveries:
            broker.ack(delivery)

    def _park(self, broker: Broker, delivery: Delivery, outcome: Settlement) -> None:
        # Only our own republished copies count: a host cannot cut its retries short.
        ours = delivery.user_id == self.own_user
        attempt = _int(delivery.headers.get(topology.HEADER_ATTEMPT)) if ours else 0
        if attempt >= len(self.delays):
            reason = f"gave up after {attempt} parked attempt(s): {outcome.reason}"
            self._dead(broker, delivery, reason, outcome.event_id)
            return
        target = topology.retry_queue(self.delays[attempt])
        headers = republish_headers(
            delivery,
            broker.user,
            **{
                topology.HEADER_ATTEMPT: attempt + 1,
                topology.HEADER_ORIGIN: topology.ALERTS_QUEUE,
                topology.HEADER_REASON: outcome.reason[:500],
            },
        )
        self._republish(broker, delivery, target, headers)
        log.warning("%s parked in %s (attempt %d of %d): %s", outcome.event_id, target,
                    attempt + 1, len(self.delays), outcome.reason)  # fmt: skip

    def _dead(self, broker: Broker, delivery: Delivery, reason: str, event_id: str) -> None:
        headers = republish_headers(
            delivery,
            broker.user,
            **{
                topology.HEADER_REASON: reason[:500],
                topology.HEADER_ORIGIN: topology.ALERTS_QUEUE,
                topology.HEADER_DEAD_AT: int(time.time()),
            },
        )
        body = delivery.body
        if len(body) > MAX_BODY:
            # No event is this long. Kept whole, one host's blobs would fill the dead queue
            # (it has no limit) until the broker's memory alarm blocks every publisher: keep
            # the first MAX_BODY bytes, and the length and digest of what arrived.
            headers[topology.HEADER_BODY_SIZE] = len(body)
            headers[topology.HEADER_BODY_SHA256] = hashlib.sha256(body).hexdigest()
            body = body[:MAX_BODY]
        self._republish(broker, delivery, topology.DEAD_QUEUE, headers, body)
        log.error("%s dead-lettered: %s", event_id if event_id != "-" else dead_id(body), reason)

    def _republish(
        self,
        broker: Broker,
        delivery: Delivery,
        queue_name: str,
        headers: dict[str, Any],
        body: bytes | None = None,
    ) -> None:
        try:
            broker.publish(topology.REROUTE_EXCHANGE, queue_name,
                           delivery.body if body is None else body,
                           headers=headers, message_id=delivery.message_id,
                           timestamp=delivery.timestamp)  # fmt: skip
        except PublishRefused as exc:
            # Not acked: it comes back, and the queue's delivery limit ends the loop.
            log.error("cannot move a message to %s: %s (is setup current?)", queue_name, exc)
            broker.requeue(delivery)
            raise _Requeued from None

    # -- pipeline thread ----------------------------------------------------------

    def _pipeline_thread(self) -> None:
        try:
            stages = self._build(self.config)
        except BaseException as exc:
            self._failed = exc
            self.stop()
            self._ready.set()
            return
        self._ready.set()
        try:
            done: list[tuple[Delivery, Settlement]] = []
            while (delivery := self._todo.get()) is not None:
                with self._lock:
                    # Not started when stopping or stale: the broker gives it back.
                    start = not self._stopping and self._current(delivery)
                    self._busy += int(start)
                if start:
                    done.append((delivery, self._process(stages, delivery)))
                # Settled in small batches while more deliveries wait: one wake-up of
                # the connection thread per batch instead of one per message.
                if done and (not start or self._todo.empty() or len(done) >= HAND_BACK_BATCH):
                    self._hand_back(done)
                    done = []
            if done:
                self._hand_back(done)
        finally:
            stages.close()

    def _current(self, delivery: Delivery) -> bool:
        broker = self._broker
        return broker is not None and broker.generation == delivery.generation

    def _process(self, stages: Stages, delivery: Delivery) -> Settlement:
        user = effective_user(delivery.user_id, delivery.headers, self.own_user)
        incoming = Incoming(delivery.body, user)
        try:
            return pipeline.process(stages, incoming)
        except Exception as exc:  # a bug must not kill the worker: park, and say so
            log.exception("internal error on message %s", short(delivery.message_id or "?", 40))
            return Settlement(Verdict.PARK, f"internal error: {type(exc).__name__}: {exc}")

    def _hand_back(self, done: list[tuple[Delivery, Settlement]]) -> None:
        broker = self._broker
        try:
            if broker is None:
                raise BrokerError("not connected")
            broker.call_soon(lambda: self._settle(done))
        except BrokerError:
            with self._lock:
                self._busy -= len(done)
            log.info("%d outcome(s) not settled (connection lost): redelivered later", len(done))


class _Requeued(Exception):
    """Internal: a delivery was requeued instead of settled."""


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
