"""The alert worker: consume the alerts queue, run the pipeline, settle each delivery.

The worker is a handler of the consumer runtime (consumer/runtime.py: connection,
reconnect with backoff, signals, generations, batched acks). Threads: pika's
BlockingConnection has no I/O thread, so the main thread only pumps the connection
(deliveries, heartbeats) and settles results; one pipeline thread takes the deliveries
that wait (up to HAND_BACK_BATCH), runs them through ``pipeline.process_batch`` together
(DNS, store, SMTP may take seconds; the store's work costs a few round trips per batch) and
hands their settlements back with ``Link.call_soon`` once the batch's writes committed. A
delivery is acked only after its settlement is final: mailed and recorded, nothing to mail,
or republished — confirmed — to a retry queue (park) or the dead queue
(consumer/retries.py).

The broker going away is survived: deliveries not yet settled simply come back (the
sent log keeps a mailed one from being mailed twice; first-seen writes are idempotent per
event id). SIGTERM/SIGINT: stop taking deliveries, finish the batch in flight, close.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from consumer import pipeline
from consumer.broker import Broker, node_cursor
from consumer.delivery import Delivery
from consumer.display import quoted
from consumer.pipeline import Settlement, Stages, Verdict
from consumer.retries import Requeued, Retries
from consumer.runtime import Link, Runtime
from consumer.stages.decode import Incoming, effective_user
from schemas import topology
from schemas.config import Config, broker_user
from schemas.errors import BrokerError

log = logging.getLogger("loginwatch.worker")

HAND_BACK_BATCH = 16


class Worker:
    """``Worker(config).run()``: consume until SIGTERM; returns the exit status."""

    def __init__(
        self,
        config: Config,
        build: Callable[[Config], Stages] = pipeline.build_stages,
        on_settle: Callable[[Settlement], None] | None = None,
    ) -> None:
        """``on_settle`` sees every settlement once it is settled (metrics, benchmarks)."""
        self.config = config
        self._on_settle = on_settle
        self.own_user = broker_user(config.broker)
        self.retries = Retries(config.worker.retry_delays, self.own_user)
        self._build = build
        self._todo: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._busy = 0  # deliveries the pipeline took and the main thread has not settled
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        nodes = node_cursor(config.broker)  # one for every connection
        self.runtime = Runtime(topology.ALERTS_QUEUE, config.worker.prefetch,
                               connect=lambda: Broker(config.broker, nodes=nodes),
                               log=log)  # fmt: skip

    def stopping(self) -> bool:
        return self.runtime.stop()

    def stop(self, *_: object) -> None:
        self.runtime.stop.set()

    def run(self) -> int:
        """Consume the alerts queue until stopped.

        Raises:
            StoreError, ConfigError: the stages could not be built.
        """
        with self.runtime.signals("finishing the delivery in flight, then stopping"):
            thread = threading.Thread(target=self._pipeline_thread, name="pipeline", daemon=True)
            thread.start()
            self._ready.wait()
            if self._failed is not None:
                raise self._failed
            try:
                status = self.runtime.run(self)
                if status == 0:
                    log.info("stopped")
                return status
            finally:
                self._todo.put(None)
                thread.join(timeout=60)

    # -- the runtime's handler (main thread) --------------------------------------

    def tick(self, runtime: Runtime) -> None:
        link = runtime.link
        if link is None:
            link = runtime.connect()
            log.info("consuming %s (prefetch %d)", topology.ALERTS_QUEUE,
                     self.config.worker.prefetch)  # fmt: skip
        link.pump(0.5)
        link.report()

    def trouble(self, error: Exception, delay: float, connected: bool) -> None:
        lost = "; unsettled deliveries come back" if connected else ""
        log.warning("broker: %s%s; retry in %gs", error, lost, delay)

    def finish(self, link: Link) -> None:
        """Settle what the pipeline already started; the rest goes back to the queue on close."""
        link.cancel()
        while True:
            with self._lock:
                if self._busy == 0:
                    return
            link.pump(0.1)

    def take(self, delivery: Delivery) -> None:
        self._todo.put(delivery)

    def _settle(self, done: list[tuple[Delivery, Settlement]]) -> None:
        """Park or dead-letter what must move, then ack the batch (in delivery order)."""
        with self._lock:
            self._busy -= len(done)
        link = self.runtime.link
        settled: list[tuple[Delivery, Settlement]] = []
        for delivery, settlement in done:
            if link is None or not link.current(delivery):
                continue  # its connection is gone: the broker redelivers it
            try:
                if settlement.verdict is Verdict.PARK:
                    self.retries.park(link.broker, delivery, settlement.reason,
                                      settlement.event_id)  # fmt: skip
                elif settlement.verdict is Verdict.DEAD:
                    self.retries.dead(link.broker, delivery, settlement.reason,
                                      settlement.event_id)  # fmt: skip
            except Requeued:
                continue
            settled.append((delivery, settlement))
        if link is None or not settled:
            return
        link.ack([delivery for delivery, _ in settled])
        if self._on_settle is not None:
            for _, settlement in settled:
                self._on_settle(settlement)

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
            while (batch := self._next_batch()) is not None:
                if batch:
                    self._hand_back(list(zip(batch, self._process(stages, batch), strict=True)))
        finally:
            stages.close()

    def _next_batch(self) -> list[Delivery] | None:
        """The deliveries waiting now (at least one; at most HAND_BACK_BATCH) that may start;
        None: stop. A delivery not started (stopping, or its connection gone) stays unacked
        and comes back."""
        batch: list[Delivery] = []
        delivery = self._todo.get()
        while delivery is not None:
            with self._lock:
                if not self.stopping() and self._current(delivery):
                    self._busy += 1
                    batch.append(delivery)
            if len(batch) >= HAND_BACK_BATCH or self._todo.empty():
                return batch
            delivery = self._todo.get()
        self._todo.put(None)  # the batch taken so far is settled first, then the thread ends
        return batch or None

    def _current(self, delivery: Delivery) -> bool:
        link = self.runtime.link
        return link is not None and link.current(delivery)

    def _process(self, stages: Stages, batch: list[Delivery]) -> list[Settlement]:
        incoming = [
            Incoming(d.body, effective_user(d.user_id, d.headers, self.own_user)) for d in batch
        ]
        try:
            return pipeline.process_batch(stages, incoming)
        except Exception as exc:  # a bug must not kill the worker: park, and say so
            ids = ", ".join(quoted(d.message_id or "?", 40) for d in batch)
            log.exception("internal error on message(s) %s", ids)
            return [Settlement(Verdict.PARK, f"internal error: {type(exc).__name__}: {exc}")
                    for _ in batch]  # fmt: skip

    def _hand_back(self, done: list[tuple[Delivery, Settlement]]) -> None:
        link = self.runtime.link
        try:
            if link is None:
                raise BrokerError("not connected")
            link.call_soon(lambda: self._settle(done))
        except BrokerError:
            with self._lock:
                self._busy -= len(done)
            log.info("%d outcome(s) not settled (connection lost): redelivered later", len(done))
