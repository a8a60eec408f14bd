"""Publish the spool to RabbitMQ: confirmed, mandatory, persistent; delete only what was confirmed.

Runs in the hook's detached child and in ``loginwatch-hook flush``. One
publisher per spool at a time (an flock); a publisher that finds the lock
taken leaves its records to the one holding it, which rescans after it lets go.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from producer import capture, spool
from producer.amqp import Channel, Nacked, connect
from producer.build import build_event
from producer.shared import log
from schemas.config import Config, NodeCursor, load_config
from schemas.errors import BrokerError, LoginwatchError, PublishRefused
from schemas.event import encode


@dataclass(frozen=True)
class FlushResult:
    published: int
    left: int
    quarantined: int
    busy: bool = False  # another publisher holds the spool


def publish_detached(config_path: str) -> None:
    """The hook's child: publish within the configured bound, log what went wrong."""
    try:
        config = load_config(config_path)
    except LoginwatchError as exc:
        log(f"{exc}; events stay in the spool until the config is fixed")
        return
    _deadline(config.broker.publish_timeout)
    try:
        result = flush(config)
    except LoginwatchError as exc:
        log(f"publish failed, events stay spooled: {exc}")
        return
    except OSError as exc:  # an unsafe or unusable spool (anything else: hook._log_crash)
        log(f"publish failed, spool unusable: {exc}")
        return
    if result.left:
        log(f"{result.left} event(s) left in {config.spool.dir}")


def _deadline(seconds: float) -> None:
    def expire(signum: int, frame: object) -> None:
        log(f"publisher gave up after {seconds:g} s; events stay spooled")
        os._exit(0)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def flush(config: Config, wait: float = 0) -> FlushResult:
    """Publish every spooled record; returns what was done.

    ``wait``: how long to wait for a publisher that holds the spool (the hook's
    child waits for none: the one running picks its record up).

    The broker nodes are tried from the one this host's name picks (``NodeCursor``).
    When the connection to a node is lost, or it nacks (a queue between leaders after a
    node died), the record whose confirm did not come is still spooled: it is published
    again to the next node after a short pause (a duplicate at most, which the worker
    folds; never a loss), for as long as ``publish_timeout`` allows.

    Raises:
        BrokerError: no broker node could be reached, or one refused the events.
        OSError: the spool is unsafe (``safedir.UnsafePath``) or unusable.
    """
    spool_dir = config.spool.dir
    nodes = NodeCursor(len(config.broker.nodes), config.host.name or os.uname().nodename)
    counts = _Counts()
    retry = _Retry(config.broker.publish_timeout)
    channel: Channel | None = None
    try:
        while True:
            with spool.publisher_lock(spool_dir, wait) as ours:
                if not ours:
                    left = len(spool.pending(spool_dir))
                    return FlushResult(counts.published, left, counts.quarantined, busy=True)
                paths = spool.pending(spool_dir)
                if not paths:
                    return FlushResult(counts.published, 0, counts.quarantined)
                channel = channel or connect(config.broker, nodes.order())
                try:
                    _publish_all(channel, config, paths, counts)
                except PublishRefused as exc:
                    if not isinstance(exc, Nacked):
                        raise
                    retry.after(exc, channel.node)
                except BrokerError as exc:
                    retry.after(exc, channel.node)
                else:
                    continue
            # The lock is let go while pausing: a hook's child that finds it free takes over.
            channel.close()
            nodes.lost(channel.node)
            channel = None
            retry.pause()
            # Released: records spooled meanwhile by hooks that found the lock
            # taken are picked up by the next round.
    finally:
        if channel is not None:
            channel.close()


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


@dataclass
class _Counts:
    published: int = 0
    quarantined: int = 0


def _publish_all(channel: Channel, config: Config, paths: list[str], counts: _Counts) -> None:
    spool_dir = config.spool.dir
    dropped = _dropped(spool_dir)
    for path in paths:
        try:
            event = build_event(capture.parse(spool.read_record(path)), config.host.name, dropped)
        except FileNotFoundError:
            continue
        except (ValueError, KeyError, OSError) as exc:
            log(f"unusable spool record {path} moved to {spool.quarantine(path)}: {exc}")
            counts.quarantined += 1
            continue
        channel.publish(event.kind, encode(event), event.id_hex, event.time)
        spool.remove(path)
        counts.published += 1
        if dropped:
            spool.count_dropped(spool_dir, -dropped)
            dropped = 0


def _dropped(spool_dir: str) -> int:
    """The drop count to report; a counter that cannot be read must not stop the events."""
    try:
        return spool.read_dropped(spool_dir)
    except OSError as exc:
        log(f"dropped counter unusable, not reported: {exc}")
        return 0
