"""The alert worker: consume the alerts queues, run the pipeline, settle each delivery.

The worker is a handler of the consumer runtime (consumer/broker/runtime.py: connection,
reconnect with backoff, signals, generations, batched acks). It consumes the shared alerts
queue (``[worker] prefetch``) and every alert lane (``topology.alert_queues``, each with
``[worker] lane_prefetch``), and takes what arrived round robin across them
(``lanes.FairQueue``), so one speaker's backlog in its lane holds one delivery per turn of
the pipeline, not the worker. Threads: pika's BlockingConnection has no I/O thread, so the
main thread only pumps the connection (deliveries, heartbeats), sends the lane probes and
settles results; one pipeline thread takes the deliveries that wait (up to
HAND_BACK_BATCH), runs them through ``pipeline.process_batch`` together (DNS, store, SMTP
may take seconds; the store's work costs a few round trips per batch) and
hands their settlements back with ``Link.call_soon`` once the batch's writes committed. A
delivery is acked only after its settlement is final: mailed and recorded, nothing to mail,
or republished — confirmed — to a retry queue (park) or the dead queue
(consumer/broker/retries.py).

The broker going away is survived: deliveries not yet settled simply come back (the
sent log keeps a mailed one from being mailed twice; first-seen writes are idempotent per
event id). SIGTERM/SIGINT: stop taking deliveries, finish the batch in flight, close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from consumer.alerts import pipeline
from consumer.alerts.lanes import FairQueue, Probes, is_probe, probe_headers, probe_sent_at
from consumer.alerts.pipeline import Settlement, Stages, Verdict
from consumer.alerts.quiet_watch import QuietWatch
from consumer.alerts.speakers import Speakers
from consumer.broker.connection import Broker, node_cursor
from consumer.broker.delivery import Delivery
from consumer.broker.retries import Requeued, Retries
from consumer.broker.runtime import Link, Runtime
from consumer.core.display import quoted
from consumer.core.identity import effective_user
from consumer.stages.decode import Incoming
from schemas import topology
from schemas.config import Config
from schemas.errors import BrokerError, PublishRefused
from schemas.nodes import broker_user

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
        self.queues = topology.alert_queues(config.broker.alert_lanes)
        self._todo = FairQueue()
        self.probes = Probes(self.queues)
        self.speakers = Speakers(config, self.own_user)  # the pipeline thread's alone
        self.quiet = QuietWatch(config)  # the pipeline thread's alone
        self._lock = threading.Lock()
        self._busy = 0  # deliveries the pipeline took and the main thread has not settled
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        nodes = node_cursor(config.broker)  # one for every connection
        lanes = dict.fromkeys(self.queues[1:], config.worker.lane_prefetch)
        self.runtime = Runtime(self.queues, config.worker.prefetch,
                               connect=lambda: Broker(config.broker, nodes=nodes),
                               log=log, prefetches=lanes)  # fmt: skip

    def stopping(self) -> bool:
        return self.runtime.stopping()

    def stop(self, *_: object) -> None:
        self.runtime.stop()

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
                self._todo.close()
                thread.join(timeout=60)

    # -- the runtime's handler (main thread) --------------------------------------

    def tick(self, runtime: Runtime) -> None:
        link = runtime.link
        if link is None:
            link = runtime.connect()
            log.info("consuming %s (prefetch %d) and %d lane(s) (prefetch %d each)",
                     topology.ALERTS_QUEUE, self.config.worker.prefetch, len(self.queues) - 1,
                     self.config.worker.lane_prefetch)  # fmt: skip
        link.pump(0.5)
        link.report()
        self._probe(link)

    def _probe(self, link: Link) -> None:
        """Send this round's lane probes when due, and report each lane's wait."""
        now = time.time()
        if not self.stopping() and self.probes.due(now):
            headers = probe_headers(now)
            for name in self.queues:
                try:
                    link.broker.publish(topology.REROUTE_EXCHANGE, name, b"", headers=headers,
                                        message_type=topology.PROBE_TYPE)  # fmt: skip
                except PublishRefused as exc:  # a full lane refuses: its age keeps growing
                    log.debug("probe of %s: %s", name, exc)
                    continue
                # The time as the probe carries it (ms): the one it is matched by.
                self.probes.sent(name, probe_sent_at(headers))
        self.probes.report(time.time())

    def trouble(self, error: Exception, delay: float, connected: bool) -> None:
        lost = "; unsettled deliveries come back" if connected else ""
        log.warning("broker: %s%s; retry in %gs", error, lost, delay)

    def finish(self, link: Link) -> None:
        """Settle what the pipeline already started; the rest goes back to the queue on close
        (but our own lane probes, which are settled too: a probe left over would only tell
        the next worker how long the lane waited for a worker to start)."""
        link.cancel()
        while True:
            link.pump(0.1)  # what arrived before the cancel, and the settlements handed back
            link.ack(self._todo.remove(lambda d: is_probe(d, self.own_user) and link.current(d)))
            with self._lock:
                if self._busy == 0:
                    return

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
            for delivery, settlement in settled:
                if not is_probe(delivery, self.own_user):  # the worker's own, no event
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
            self.speakers.write(stages, stages.clock())
            stages.close()

    def _next_batch(self) -> list[Delivery] | None:
        """The deliveries waiting now (at least one; at most HAND_BACK_BATCH, round robin
        across the queues) that may start; None: stop. A delivery not started (stopping, or
        its connection gone) stays unacked and comes back."""
        taken = self._todo.take(HAND_BACK_BATCH)
        if taken is None:
            return None
        with self._lock:
            stopping = self.stopping()
            batch = [d for d in taken if self._current(d)
                     and (not stopping or is_probe(d, self.own_user))]  # fmt: skip
            self._busy += len(batch)
        return batch

    def _current(self, delivery: Delivery) -> bool:
        link = self.runtime.link
        return link is not None and link.current(delivery)

    def _process(self, stages: Stages, batch: list[Delivery]) -> list[Settlement]:
        settled: list[Settlement | None] = [None] * len(batch)
        now = time.time()
        for index, delivery in enumerate(batch):
            if is_probe(delivery, self.own_user):
                self.probes.arrived(delivery.queue, probe_sent_at(delivery.headers), now)
                settled[index] = Settlement(Verdict.DONE, "lane probe")
        work = [d for d, s in zip(batch, settled, strict=True) if s is None]
        decided = iter(self._decide(stages, work))
        done = [s if s is not None else next(decided) for s in settled]
        self.quiet.check(stages)  # the probes wake an idle worker every few seconds
        return done

    def _decide(self, stages: Stages, batch: list[Delivery]) -> list[Settlement]:
        """Shed what a flooding speaker sent that may be shed; run the rest through the
        pipeline; learn what became of it (consumer/alerts/speakers.py)."""
        if not batch:
            return []
        now = stages.clock()
        messages = self.speakers.messages(stages, batch)
        shed = self.speakers.shed(stages, messages, now)
        kept = [i for i, settled in enumerate(shed) if settled is None]
        flooding = set(self.speakers.shedder.flooding())
        incoming = [Incoming(batch[i].body,
                             effective_user(batch[i].user_id, batch[i].headers, self.own_user),
                             batch[i].arrived, quiet=messages[i].speaker in flooding)
                    for i in kept]  # fmt: skip
        self.speakers.before(stages, [messages[i] for i in kept], now)
        try:
            decided = pipeline.process_batch(stages, incoming) if incoming else []
        except Exception as exc:  # a bug must not kill the worker: park, and say so
            ids = ", ".join(quoted(batch[i].message_id or "?", 40) for i in kept)
            log.exception("internal error on message(s) %s", ids)
            decided = [Settlement(Verdict.PARK, f"internal error: {type(exc).__name__}: {exc}")
                       for _ in kept]  # fmt: skip
        else:
            self.speakers.learn([messages[i] for i in kept], decided, now)
        settled = list(shed)
        for index, settlement in zip(kept, decided, strict=True):
            settled[index] = settlement
        self.speakers.after(stages, now)
        return [s for s in settled if s is not None]

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
