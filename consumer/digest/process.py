"""The digest side of one process, wired: the digest's composition root.

``build(config, clock=…)`` opens the store and hands every part what it uses when it is
built (architecture.md #13): the lease, the intake, the window sender, and the runtime whose
connection also counts the dead queue for the sender. ``loginwatch digest``
(``commands/run_digest.py``) only reads the command line and the environment and calls it;
tests call ``wire`` with parts of their own.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from consumer.broker.connection import Broker
from consumer.broker.runtime import Runtime
from consumer.channels.base import Channel
from consumer.channels.outlets import open_outlets
from consumer.digest.intake import Intake
from consumer.digest.lease import Lease
from consumer.digest.mail import DigestRenderer
from consumer.digest.scheduler import Scheduler, new_runtime
from consumer.digest.sender import WindowSender, annotator
from consumer.digest.tables import DigestStore
from consumer.digest.view import Annotate
from consumer.store import Store, open_store
from schemas import topology
from schemas.config import Config, store_password


@dataclass(frozen=True)
class DigestProcess:
    """The digest side of one process, wired: the store, the lease, the intake, the window
    sender, and the runtime whose connection counts the dead queue for the sender."""

    config: Config
    store: Store
    events: DigestStore
    lease: Lease
    intake: Intake
    sender: WindowSender
    runtime: Runtime
    clock: Callable[[], datetime]

    def scheduler(self) -> Scheduler:
        """A scheduler on these parts (one per run: ``--send-now`` may run two)."""
        return Scheduler(self.config, self.events, intake=self.intake, sender=self.sender,
                         lease=self.lease, runtime=self.runtime, clock=self.clock)  # fmt: skip

    def close(self) -> None:
        self.sender.mailer.close()
        self.store.close()


def wire(
    config: Config,
    store: Store,
    *,
    mailer: Channel,
    annotate: Annotate,
    owner: str,
    clock: Callable[[], datetime],
    checkpoint: Callable[[str], None] = lambda _name: None,
    lease_clock: Callable[[], float] = time.time,
    broker: Callable[[], Broker] | None = None,
) -> DigestProcess:
    """Wire the digest side on ``store``: every part is handed what it uses when it is built."""
    events = DigestStore(store)
    lease = Lease.of(config, events, owner, lease_clock)
    runtime = new_runtime(config, broker)
    sender = WindowSender(config, events, store, mailer, DigestRenderer(config), annotate, lease,
                          dead_count=partial(runtime.messages, topology.DEAD_QUEUE),
                          checkpoint=checkpoint)  # fmt: skip
    intake = Intake(config, events, store, lease)
    return DigestProcess(config, store, events, lease, intake, sender, runtime, clock)


def build(
    config: Config,
    *,
    clock: Callable[[], datetime],
    checkpoint: Callable[[str], None] = lambda _name: None,
) -> DigestProcess:
    """The digest machinery of one process (store opened, templates compiled).

    Raises:
        StoreError, ConfigError.
    """
    # Events are acked once stored: the commit must survive a power loss.
    store = open_store(config.store.url, durable=True, password=store_password(config.store),
                       ca_file=config.store.ca_file)  # fmt: skip
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    try:
        outlets = open_outlets(config)
    except BaseException:
        store.close()
        raise
    return wire(config, store, mailer=outlets, annotate=annotator(config),
                owner=owner, clock=clock, checkpoint=checkpoint)  # fmt: skip
