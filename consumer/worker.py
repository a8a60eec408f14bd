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

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from consumer import metrics, pipeline
from consumer.broker import Broker
from consumer.delivery import Delivery
from consumer.pipeline import Settlement, Stages, Verdict
from consumer.retries import Requeued, Retries
from consumer.stages.decode import Incoming, effective_user, short
from schemas import topology
from schemas.config import Config, broker_user
from schemas.errors import BrokerError, QueueMissing

log = logging.getLogger("loginwatch.worker")

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
HAND_BACK_BATCH = 16


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
        self.own_user = broker_user(config.broker)
        self.retries = Retries(config.worker.retry_delays, self.own_user)
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
                    self.retries.park(broker, delivery, outcome.reason, outcome.event_id)
                elif outcome.verdict is Verdict.DEAD:
                    self.retries.dead(broker, delivery, outcome.reason, outcome.event_id)
            except Requeued:
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
