"""The hook's detached publisher: what the forked child does, within its own deadline.

It publishes the spool (``producer.flush``) when the hook handed it the publisher lock.
It lingers (``LINGER_S``) with its connection open once the spool
is empty, for the rest of a burst: thirty failed passwords in a row cost one
publisher's imports and connection, not thirty.

A record the hook could not spool is handed over in memory (``Handoff``): the
publisher sends it from there, spools it after all when the broker is away, and
counts it as dropped, with what it was, only when both fail. A record whose
spooling the hook's deadline cut short is looked for in the spool first (a temp
file of it that holds all of it is adopted).
"""

from __future__ import annotations

import os
import signal

from producer import capture, ledger, settings, spool
from producer.amqp import Channel, connect
from producer.backlog import Backlog
from producer.build import build_event
from producer.flush import flush
from producer.shared import log
from producer.spool import Handoff
from schemas import wire
from schemas.compact import compact
from schemas.config import Config, load_config
from schemas.errors import LoginwatchError
from schemas.nodes import NodeCursor

# How long the hook's publisher waits for more records once the spool is empty (and, when
# no broker answered, tries again): the rest of a burst forks no publisher of its own.
LINGER_S = 3.0


def publish_detached(config_path: str, lock_fd: int = -1, handoff: Handoff | None = None) -> None:
    """The hook's child: publish within the configured bound, log what went wrong.

    ``lock_fd``: the publisher lock, taken by the hook; ``spool.LOCK_BUSY``: another
    publisher holds it, and this child only delivers ``handoff``; ``spool.LOCK_TAKE``:
    the hook could not try it, the child does.
    """
    try:
        config = load_config(config_path)
    except LoginwatchError as exc:
        log(f"{exc}; events stay in the spool until the config is fixed")
        if handoff is not None:  # in the spool a broken config sends the hook to
            _lost(_in(handoff, settings.DEFAULT.spool_dir), str(exc))
        return
    if handoff is not None:
        handoff = _in(handoff, config.spool.dir)
    _deadline(config.broker.publish_timeout)
    channel = None
    try:
        if handoff is not None:
            channel = _deliver(config, handoff)
        if lock_fd != spool.LOCK_BUSY:
            held = max(lock_fd, -1)
            result = flush(config, held=held, linger=LINGER_S, channel=channel)
            channel = None  # flush closed it
            if result.left:
                log(f"{result.left} event(s) left in {config.spool.dir}")
    except LoginwatchError as exc:
        log(f"publish failed, events stay spooled: {exc}")
    except OSError as exc:  # an unsafe or unusable spool (anything else: hook.log_crash)
        log(f"publish failed, spool unusable: {exc}")
    finally:
        if channel is not None:
            channel.close()


def _in(handoff: Handoff, spool_dir: str) -> Handoff:
    """``handoff`` with ``spool_dir`` when the hook did not know its spool yet."""
    if handoff.spool_dir:
        return handoff
    return Handoff((handoff.name, handoff.data, spool_dir, handoff.spooled))


def _deliver(config: Config, handoff: Handoff) -> Channel | None:
    """Send a record the hook holds in memory, unless it is in the spool after all;
    returns the channel it opened, for the spool's turn."""
    if handoff.spooled:
        try:
            with Backlog(handoff.spool_dir, create=True) as backlog:
                if backlog.find(handoff.name, handoff.data):
                    return None  # the spool has it: the round that follows sends it
        except OSError as exc:
            log(f"spool unusable, sending the event from memory: {exc}")
    # Until the broker confirms it, the publisher's own deadline spools or counts it too.
    _undelivered.append((config, handoff))
    try:
        event = build_event(capture.parse(handoff.data), config.host.name)
        nodes = NodeCursor(len(config.broker.nodes), config.host.name or os.uname().nodename)
        channel = connect(config.broker, nodes.order())
        try:
            channel.publish(event.kind, wire.encode(compact(event)), event.id_hex, event.time)
        except BaseException:
            channel.close()
            raise
        _undelivered.clear()
        return channel
    except (LoginwatchError, ValueError, KeyError) as exc:
        _respool(config, handoff, str(exc))
        _undelivered.clear()  # spooled or counted: the deadline has nothing left to do
        return None


# The record ``_deliver`` holds in memory while the broker has not confirmed it.
_undelivered: list[tuple[Config, Handoff]] = []


def _respool(config: Config, handoff: Handoff, why: str) -> None:
    """The broker did not take a record from memory: the spool may take it now (the
    space may be back); else it is dropped, and counted."""
    spool_cfg = config.spool
    try:
        spool.write(handoff.spool_dir, handoff.name, handoff.data, spool_cfg.max_events,
                    spool_cfg.max_bytes)  # fmt: skip
    except (spool.SpoolFull, OSError) as exc:
        _lost(handoff, f"{why}; and not spooled: {exc}")
        return
    log(f"event spooled after all, the broker did not take it: {why}")


def _lost(handoff: Handoff, why: str) -> None:
    drop = ledger.describe(handoff.data)
    try:
        # Forgotten as it is counted: the deadline would count it again.
        total = ledger.add(handoff.spool_dir, [drop], then=_undelivered.clear)
    except OSError as exc:
        log(f"event lost ({why}); the drop could not be counted either: {exc}")
        return
    log(f"event dropped ({why}); {total} dropped event(s) to report")


def _spooled(handoff: Handoff) -> bool:
    try:
        with Backlog(handoff.spool_dir) as backlog:
            return backlog.find(handoff.name, handoff.data)
    except OSError:
        return False


def _deadline(seconds: float) -> None:
    def expire(signum: int, frame: object) -> None:
        log(f"publisher gave up after {seconds:g} s; events stay spooled")
        for config, handoff in list(_undelivered):
            if not _spooled(handoff):  # the deadline may have come just as it was spooled
                _respool(config, handoff, f"the broker did not confirm it within {seconds:g} s")
        os._exit(0)

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
