"""Publish the spool to RabbitMQ: confirmed, mandatory, persistent; delete only what was confirmed.

``flush`` runs in the hook's detached publisher (``producer.publisher``) and in
``loginwatch-hook flush``. One publisher per spool at a time (an flock, which the hook
takes before it forks, so a hook that finds it taken forks nobody: the running publisher
takes its record). A publisher lets go of the lock only once it found the spool empty,
and then looks once more: a record spooled while it held the lock is never left behind.
It also adopts what a deadline left in the spool, makes the slots, and reports what the
spool dropped with the first event that gets through.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from producer import capture, ledger
from producer.amqp import Channel, Nacked, connect
from producer.backlog import Backlog, Entry, spool_lock
from producer.build import build_event
from producer.shared import log
from schemas import wire
from schemas.compact import compact
from schemas.config import Config
from schemas.errors import BrokerError, PublishRefused
from schemas.nodes import NodeCursor

# How often a lingering publisher looks at the spool (a record arriving then is on its way
# within POLL_S), and how often it tries again a broker that did not answer.
POLL_S = 0.05
RETRY_S = 1.0


@dataclass(frozen=True)
class FlushResult:
    published: int
    left: int
    quarantined: int
    busy: bool = False  # another publisher holds the spool


def flush(
    config: Config,
    wait: float = 0,
    held: int = -1,
    linger: float = 0,
    channel: Channel | None = None,
) -> FlushResult:
    """Publish every spooled record; returns what was done.

    ``wait``: how long to wait for a publisher that holds the spool. ``held``: the lock,
    taken already (the hook's child). ``linger``: how long to wait for more records once
    the spool is empty. ``channel``: a connection to use first (closed at the end).

    The broker nodes are tried from the one this host's name picks (``NodeCursor``).
    When the connection to a node is lost, or it nacks (a queue between leaders after a
    node died), the record whose confirm did not come is still spooled: it is published
    again to the next node after a short pause (a duplicate at most, which the worker
    folds; never a loss), for as long as ``publish_timeout`` allows.

    Raises:
        BrokerError: no broker node could be reached, or one refused the events.
        OSError: the spool is unsafe (``safedir.UnsafePath``) or unusable.
    """
    run = _Run(config, channel, linger)
    try:
        while True:
            with spool_lock(config.spool.dir, wait, held) as ours:
                held, wait = -1, 0
                if not ours:
                    return run.result(busy=True)
                emptied = run.rounds()
            if not emptied:
                run.pause()  # the lock is let go meanwhile: a hook's child may take over
            elif not run.waiting():
                return run.result()
            # Else a hook spooled a record after our last look and found the lock taken.
    finally:
        run.close()


class _Run:
    """One flush: the connection, the node order, the retry clock, the counts."""

    def __init__(self, config: Config, channel: Channel | None, linger: float) -> None:
        self.config = config
        self.spool_dir = config.spool.dir
        self.channel = channel
        self.nodes = NodeCursor(len(config.broker.nodes), config.host.name or os.uname().nodename)
        self.retry = _Retry(config.broker.publish_timeout)
        self.linger = linger
        # New records are taken for half the publisher's time: the rest is for sending them.
        self.open_until = time.monotonic() + config.broker.publish_timeout / 2
        self.idle_since = time.monotonic()
        self.published = self.quarantined = 0
        self.cleaned = False

    def rounds(self) -> bool:
        """Publish until the spool is empty (and stays so for ``linger``): True; or
        until a node fails (False: pause, then the next node).

        Raises:
            BrokerError: out of time (``_Retry``), or a refusal no other node changes.
        """
        with Backlog(self.spool_dir, create=True) as backlog:
            if not self.cleaned:
                self._clean(backlog)
            while True:
                entries = backlog.pending()
                if entries:
                    if not self._publish(backlog, entries):
                        return False
                    self.idle_since = time.monotonic()
                    continue
                if not self.cleaned:
                    self.cleaned = True
                    self._prepare(backlog)
                now = time.monotonic()
                if now - self.idle_since >= self.linger or now >= self.open_until:
                    return True
                time.sleep(POLL_S)

    def _clean(self, backlog: Backlog) -> None:
        adopted, dropped = backlog.adopt_orphans(time.time())
        if adopted or dropped:
            log(f"temp files left by a deadline: {adopted} adopted, {dropped} dropped (counted)")

    def _prepare(self, backlog: Backlog) -> None:
        try:
            backlog.prepare()
        except OSError as exc:  # the spool works with files alone meanwhile
            log(f"spool slots not made (records need a new file each): {exc}")

    def _connect(self) -> Channel:
        """A channel to the first node that answers; the hook's publisher tries again
        every ``RETRY_S`` while it takes new records, holding the lock: the rest of a
        burst then forks no publisher that would fail the same way, and a login that
        comes meanwhile goes out as soon as a node is back.

        Raises:
            BrokerError: no node answered (records wait for the flush timer).
        """
        while True:
            try:
                return connect(self.config.broker, self.nodes.order())
            except BrokerError:
                if not self.linger or time.monotonic() + RETRY_S >= self.open_until:
                    raise
            time.sleep(RETRY_S)

    def _publish(self, backlog: Backlog, entries: list[Entry]) -> bool:
        if self.channel is None:
            self.channel = self._connect()
        try:
            self._publish_all(backlog, entries)
        except PublishRefused as exc:
            if not isinstance(exc, Nacked):
                raise
            self.retry.after(exc, self.channel.node)
        except BrokerError as exc:
            self.retry.after(exc, self.channel.node)
        else:
            return True
        self.channel.close()
        self.nodes.lost(self.channel.node)
        self.channel = None
        return False

    def _publish_all(self, backlog: Backlog, entries: list[Entry]) -> None:
        assert self.channel is not None
        report = _ledger(self.spool_dir)
        for entry in entries:
            try:
                data = backlog.take(entry)
            except OSError as exc:
                if entry.slot >= 0:
                    raise  # the slots file itself fails: the spool is unusable
                self._set_aside(backlog, entry, b"", exc)  # a symlink, a FIFO …
                continue
            if data is None:
                continue
            try:
                event = build_event(capture.parse(data), self.config.host.name, report)
            except (ValueError, KeyError) as exc:
                self._set_aside(backlog, entry, data, exc)
                continue
            try:
                body = wire.encode(compact(event))
                self.channel.publish(event.kind, body, event.id_hex, event.time)
            except BaseException:
                backlog.release(entry)
                raise
            backlog.done(entry)
            self.published += 1
            if report.total:
                ledger.settle(self.spool_dir, report)
                report = ledger.EMPTY
        backlog.sync()

    def _set_aside(self, backlog: Backlog, entry: Entry, data: bytes, exc: Exception) -> None:
        if isinstance(exc, capture.Damaged):
            # Cut short by a crash: what it was is counted as dropped, and kept aside.
            ledger.add(self.spool_dir, [ledger.describe(data)])
        try:
            where = backlog.set_aside(entry, data)
        except OSError as error:
            backlog.release(entry)
            log(f"unusable spool record {entry.label} ({exc}) could not be set aside: {error}")
            return
        log(f"unusable spool record {entry.label} moved to {where}: {exc}")
        self.quarantined += 1

    def pause(self) -> None:
        self.retry.pause()

    def waiting(self) -> int:
        with Backlog(self.spool_dir, create=True) as backlog:
            return len(backlog.pending())

    def result(self, busy: bool = False) -> FlushResult:
        left = self.waiting() if busy else 0
        return FlushResult(self.published, left, self.quarantined, busy=busy)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None


class _Retry:
    """Another node after a lost or nacked publish, with growing pauses (a quorum queue
    needs a moment to elect a leader), until ``seconds`` from now."""

    PAUSES_S = (0.2, 0.5, 1.0, 2.0)

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self._tries = 0

    def after(self, error: BrokerError, node: int) -> None:
        """Raises: BrokerError: ``error``, when the next try would end past the deadline."""
        pause = self.PAUSES_S[min(self._tries, len(self.PAUSES_S) - 1)]
        if time.monotonic() + pause >= self._deadline:
            raise error
        log(f"broker node {node}: {error}; publishing again to the next node")
        self._tries += 1

    def pause(self) -> None:
        time.sleep(self.PAUSES_S[min(self._tries - 1, len(self.PAUSES_S) - 1)])


def _ledger(spool_dir: str) -> ledger.Ledger:
    """What the spool dropped, to report; a ledger that cannot be read must not stop
    the events."""
    try:
        return ledger.read(spool_dir)
    except OSError as exc:
        log(f"dropped counter unusable, not reported: {exc}")
        return ledger.EMPTY
