"""``loginwatch digest``: store the digest queue's events, send each window's digests.

One scheduler works at a time. It first takes the store's lease (``digest_lease``, renewed
every tick, ``[digest] lease`` long); only then does it consume the digest queue (which
has single-active-consumer, so a second consumer is a standby there too) and send. A
standby polls the lease and takes over when the holder stops renewing — at once after a
clean shutdown (the lease is released), ``lease`` after a crash. Storing and sending in the
one process that holds the lease means no event can be stored into a window after it was
aggregated.

Each delivery is acked only after its event is committed to the store (in batches, one
transaction per pump of the connection). A message that cannot be stored goes to the dead
queue on its own, with the reason; the rest of its batch is stored. ``--once`` sends only
once the queue looks drained. The clock is injected (tests drive simulated windows;
``LOGINWATCH_TEST_CLOCK``), and so is ``checkpoint`` (``LOGINWATCH_TEST_CRASH_AT``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from consumer.broker.connection import Broker, node_cursor
from consumer.broker.delivery import Delivery
from consumer.broker.retries import dead_letter
from consumer.broker.runtime import Link, Runtime
from consumer.digest.intake import LOOKBACK, Intake
from consumer.digest.lease import Lease, LeaseLost
from consumer.digest.sender import WindowSender
from consumer.digest.tables import DigestStore
from consumer.digest.windows import due
from consumer.store import retention
from consumer.store.actions import prune_actions
from schemas import topology
from schemas.config import Config
from schemas.errors import BrokerError, StoreError, TransientSendError

log = logging.getLogger("loginwatch.digest")

PRUNE_EVERY = 3600.0
PREFETCH = 500  # deliveries stored (and acked) per transaction
SETTLE_S = 1.0  # a queue silent this long, with no ready message, is drained


def new_runtime(config: Config, broker: Callable[[], Broker] | None = None) -> Runtime:
    """The runtime a scheduler runs on: the digest queue, ``PREFETCH`` deliveries per
    transaction, a store outage retried like a broker outage."""
    nodes = node_cursor(config.broker)  # one for every connection
    return Runtime((topology.DIGEST_QUEUE,), PREFETCH,
                   connect=broker or (lambda: Broker(config.broker, nodes=nodes)),
                   retry_on=(BrokerError, StoreError), log=log)  # fmt: skip


class Scheduler:
    """``Scheduler(config, store, intake=…, sender=…, lease=…, runtime=…, clock=…)
    .run(once=False)`` → exit status.

    A handler of the consumer runtime (consumer/broker/runtime.py): each tick renews the lease,
    then pumps the connection, stores what came (``intake``) and sends what is due
    (``sender``). ``runtime`` is the one whose connection also counts the dead queue for
    the sender."""

    def __init__(
        self,
        config: Config,
        store: DigestStore,
        *,
        intake: Intake,
        sender: WindowSender,
        lease: Lease,
        runtime: Runtime,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.store = store
        self.intake = intake
        self.sender = sender
        self.lease = lease
        self.runtime = runtime
        self.clock = clock
        self.tick_s = min(1.0, lease.ttl / 4)
        self.pending: list[Delivery] = []
        self._last_delivery = time.monotonic()
        self._empty_since: float | None = None
        self._once = False
        self._give_up = 0.0
        self._pruned: float | None = None
        self._retry_at = 0.0
        self._anchor: datetime | None = None  # the store's first start (set once, kept)

    # -- the loop -----------------------------------------------------------------------

    def run(self, once: bool = False) -> int:
        """Work until ``stop()`` (or, with ``once``, until the queue is drained and every
        due window is sent). Returns the exit status: 1 when ``once`` gave up (the broker
        or the store unreachable, or the lease held elsewhere, for ``ttl`` + 10 s)."""
        self._once = once
        self._give_up = time.monotonic() + self.lease.ttl + 10
        try:
            with self.runtime.signals():
                return self.runtime.run(self)
        finally:
            with contextlib.suppress(StoreError):
                self.lease.release()

    def stop(self, *_: object) -> None:
        self.runtime.stop()

    def tick(self, runtime: Runtime) -> int | None:
        """One tick: as the lease holder, or standing by."""
        once = self._once
        if not self.lease.acquire():
            if once and time.monotonic() > self._give_up:
                log.error("another scheduler holds the lease (%s)",
                          self.lease.holder())  # fmt: skip
                return 1
            self._standby()
            return None
        if self._step(runtime, once) and once:
            return 0
        if once and self._retry_at > time.monotonic():
            log.error("the SMTP server is unreachable: digests not sent, run again")
            return 1
        return None

    def trouble(self, error: Exception, delay: float, connected: bool) -> int | None:
        if self._once and time.monotonic() > self._give_up:
            log.error("%s; giving up: digests not sent, run again", error)
            return 1
        log.warning("%s; unacked events come back; retry in %gs", error, delay)
        return None

    def finish(self, link: Link) -> None:
        """Nothing is in flight between ticks: what is not acked comes back."""

    def _step(self, runtime: Runtime, once: bool = False) -> bool:
        """One tick as the lease holder; True when the queue looks drained and every due
        digest is out (what ``--once`` waits for: it sends only once drained, so a run
        stores everything queued before it sends)."""
        link = runtime.link
        if link is None:
            self._anchor = self.store.anchor(self.clock())  # no window before it is due
            link = self._connect(runtime)
        drained = self._pump(link) and (not once or self._drained(link))
        if once and not drained:
            return False  # --once sends only what was stored from a drained queue
        done = self._send_due()
        self._prune()
        return drained and done

    def _standby(self) -> None:
        if self.runtime.link is not None:
            log.warning("lost the scheduler lease to %s: standing by",
                        self.lease.holder())  # fmt: skip
            self._disconnect()
        self.runtime.pause(self.tick_s)

    def _connect(self, runtime: Runtime) -> Link:
        link = runtime.connect()
        self.pending = []  # any left are a lost connection's: the broker redelivers them
        self._last_delivery = time.monotonic()
        self._empty_since = None
        log.info("holding the lease (%s); consuming %s", self.lease.owner,
                 topology.DIGEST_QUEUE)  # fmt: skip
        return link

    def _disconnect(self) -> None:
        self.runtime.disconnect()
        self.pending.clear()  # unacked: the broker redelivers them

    def take(self, delivery: Delivery) -> None:
        # Looked up at each delivery: flush() replaces the list, and a callback bound to
        # one list (``self.pending.append``) would file every later delivery where
        # nothing reads it, unacked until the connection closes (issue 10).
        self.pending.append(delivery)

    def _pump(self, link: Link) -> bool:
        """Take deliveries for one tick and store them; True when none came."""
        link.pump(self.tick_s)
        took = bool(self.pending)
        if took:
            self.flush(link)
        link.report()
        if not took:
            return True
        # Silence counts from the ack: the broker sends more only once it has room again.
        self._last_delivery = time.monotonic()
        self._empty_since = None
        return False

    # -- intake -------------------------------------------------------------------------

    def flush(self, link: Link) -> None:
        """Store the pending deliveries (``Intake.store``), dead-letter the events the
        store refused, then ack them all.

        Raises:
            StoreError: the store fails (nothing acked: the connection is dropped and
                every unacked delivery comes back; stored ones are kept once).
            BrokerError: the connection failed.
        """
        batch, self.pending = self.pending, []
        for dead in self.intake.store(batch, self.clock()):
            dead_letter(link.broker, dead.delivery, dead.reason, dead.event_id,
                        origin=topology.DIGEST_QUEUE)  # fmt: skip
        # Every earlier delivery of this connection was acked with its own batch: this
        # one is the next run of tags, acked with one frame.
        link.ack(batch)

    # -- sending ------------------------------------------------------------------------

    def _send_due(self) -> bool:
        """Send the windows that are due; True when every one of them is finished."""
        now = self.clock()
        if time.monotonic() < self._retry_at:
            return False
        assert self._anchor is not None  # set when the connection was opened
        # Never further back than [store] keep: older window states are pruned, and a
        # window without a state row would be sent again.
        keep = timedelta(seconds=self.config.store.keep.seconds)
        since = max(self._anchor, now - min(LOOKBACK, keep / 2))
        windows = due(self.sender.schedule, now, self.store.cuts(since), since)
        for window in windows:
            try:
                self.sender.send_window(window, now)
            except TransientSendError as exc:
                log.warning("digest %s: SMTP: %s; retrying in a minute", window.key, exc)
                self._retry_at = time.monotonic() + 60
                return False
            except LeaseLost as exc:
                log.warning("%s: standing by", exc)
                self._disconnect()
                return False
        return all(self.store.finished(w, self.sender.recipients) for w in windows)

    def _prune(self) -> None:
        """Every PRUNE_EVERY, forget what is older than [store] keep, in bounded batches
        (consumer/store/retention.py); at the next tick again while a table had more."""
        if self._pruned is not None and time.monotonic() - self._pruned < PRUNE_EVERY:
            return
        now = self.clock()
        before = now - timedelta(seconds=self.config.store.keep.seconds)
        try:
            pruned = self.store.prune_all(before)
            # Silences, questions, answers and the web's state (consumer/store/actions.py).
            pruned |= prune_actions(self.store.db, before=before, now=now)
        except StoreError as exc:
            self._pruned = time.monotonic()
            log.warning("pruning the store: %s", exc)
            return
        more = any(count >= retention.MOST for count in pruned.values())
        self._pruned = None if more else time.monotonic()
        if any(pruned.values()):
            counts = ", ".join(f"{count} {table}" for table, count in pruned.items() if count)
            log.info("pruned rows older than %s: %s%s", self.config.store.keep, counts,
                     "; more next tick" if more else "")  # fmt: skip

    def _drained(self, link: Link) -> bool:
        """The queue looks empty. A consumer cannot tell "empty" from "the rest
        is on its way" (a single-active-consumer queue activates a new consumer with a
        delay, and basic.get is refused on it), and the broker's count leaves out what it
        has already pushed to us: deliveries that arrive while the count is asked for wait
        in pika's buffer until the next pump. Empty means no delivery for a second, then no
        ready message, then still no delivery for another second."""
        now = time.monotonic()
        if now - self._last_delivery < SETTLE_S:
            return False
        if link.count(topology.DIGEST_QUEUE):
            self._empty_since = None
            return False
        if self._empty_since is None:
            self._empty_since = now
        return now - self._empty_since >= SETTLE_S
