"""``loginwatch digest``: the digest scheduler, ``--preview`` and ``--send-now``.

Test-only environment (read here, at the edge, and documented as such in the README):
``LOGINWATCH_TEST_CLOCK`` (ISO time: the scheduler's clock starts there and runs on in
real time) and ``LOGINWATCH_TEST_CRASH_AT`` (``after-claim``, ``after-smtp``,
``after-record``: the process SIGKILLs itself at that point of sending a digest).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from consumer import metrics
from consumer.broker import Broker, connection_parameters
from consumer.cli import add_config_argument
from consumer.commands._common import config_of
from consumer.digest.intake import LOOKBACK, Intake
from consumer.digest.lease import Lease
from consumer.digest.render import DigestRenderer
from consumer.digest.scheduler import Scheduler, new_runtime
from consumer.digest.sender import WindowSender, annotator
from consumer.digest.store import DigestStore
from consumer.digest.view import Annotate
from consumer.digest.windows import current
from consumer.runtime import Runtime
from consumer.stages.smtp import Sender, SmtpSender
from consumer.store import Store, open_store
from schemas import topology
from schemas.config import Config, store_password
from schemas.errors import BrokerError, ConfigError

CLOCK_ENV = "LOGINWATCH_TEST_CLOCK"
CRASH_ENV = "LOGINWATCH_TEST_CRASH_AT"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "digest",
        help="store events and send one digest per window and recipient (runs until SIGTERM)",
        description=(
            "Consume loginwatch.digest into the store and mail each recipient one digest per"
            " [digest] window, exactly once. Run one on each of two machines for a standby:"
            " the one holding the store's lease works, the other takes over when it stops."
        ),
    )
    add_config_argument(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--preview",
        action="store_true",
        help="print a window's digest (text part) without sending it",
    )
    mode.add_argument(
        "--send-now", action="store_true", help="close the current window now and send its digests"
    )
    mode.add_argument(
        "--once",
        action="store_true",
        help="drain the queue, send the due digests, exit (e.g. from a timer)",
    )
    parser.add_argument(
        "--window",
        metavar="TIME",
        help="--preview: the window containing TIME (ISO 8601; default now)",
    )
    parser.add_argument("--html", metavar="FILE", help="--preview: also write the HTML part here")
    parser.add_argument("--to", metavar="ADDR", help="--preview: this recipient's digest only")
    parser.set_defaults(run=run)


def test_clock(environ: dict[str, str]) -> Callable[[], datetime]:
    """The scheduler's clock: real UTC time, or (tests) one starting at $LOGINWATCH_TEST_CLOCK.

    Raises:
        ConfigError: the variable is not an ISO time with an offset.
    """
    start = environ.get(CLOCK_ENV)
    if not start:
        return lambda: datetime.now(UTC)
    origin = parse_time(start, CLOCK_ENV)
    began = time.monotonic()
    return lambda: origin + timedelta(seconds=time.monotonic() - began)


def parse_time(text: str, what: str) -> datetime:
    """Raises:
    ConfigError: not ISO 8601 (a time without offset is taken as UTC).
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what}: not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def crash_point(environ: dict[str, str]) -> Callable[[str], None]:
    wanted = environ.get(CRASH_ENV, "")

    def checkpoint(name: str) -> None:
        if name == wanted:
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


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
        self.store.close()


def wire(
    config: Config,
    store: Store,
    *,
    mailer: Sender,
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


def build(config: Config, environ: dict[str, str]) -> DigestProcess:
    """The digest machinery of one process (store opened, templates compiled).

    Raises:
        StoreError, ConfigError.
    """
    # Events are acked once stored: the commit must survive a power loss.
    store = open_store(config.store.url, durable=True, password=store_password(config.store))
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return wire(config, store, mailer=SmtpSender(config.smtp), annotate=annotator(config),
                owner=owner, clock=test_clock(environ),
                checkpoint=crash_point(environ))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    environ = dict(os.environ)
    digest = build(config, environ)
    try:
        if args.preview:
            return preview(config, digest, args)
        if args.send_now:
            return send_now(digest)
        # A standby touches the broker only when it takes over: read the password file
        # now, so a bad one is one line at start, not silence until the active one dies.
        connection_parameters(config.broker)
        metrics.start(config.metrics.listen, environ)
        return digest.scheduler().run(once=args.once)
    finally:
        digest.close()


def send_now(digest: DigestProcess) -> int:
    now = digest.clock()  # the window closes at the moment the operator asked
    holder = digest.lease.holder()
    if holder is not None:
        digest.events.cut(now)
        print(
            f"window closed at {now:%Y-%m-%d %H:%M:%S %Z}; the running scheduler ({holder})"
            " sends its digests within seconds"
        )
        return 0
    digest.events.anchor(now)  # a first run: the window being closed is sent all the same
    # No scheduler is running: store what waits in the queue first, or it would be
    # counted in the window after the cut instead of the one being closed.
    status = digest.scheduler().run(once=True)
    if status != 0:
        return status
    digest.events.cut(now)
    return digest.scheduler().run(once=True)


def preview(config: Config, digest: DigestProcess, args: argparse.Namespace) -> int:
    now = digest.clock()
    sender = digest.sender
    moment = parse_time(args.window, "--window") if args.window else now
    window = current(sender.schedule, moment, digest.events.cuts(moment - LOOKBACK))
    wanted = [args.to.lower()] if args.to else list(sender.recipients)
    if not wanted:
        print("loginwatch digest: no route names a recipient", file=sys.stderr)
        return 1
    summaries = sender.summaries(window, _dead_count(config), wanted)
    for number, recipient in enumerate(wanted):
        subject, text, html = sender.renderer.parts(sender.view(summaries[recipient]))
        if number:
            print("\n" + "=" * 72 + "\n")
        print(f"To: {recipient}\nSubject: {subject}\n\n{text}")
        if args.html and number == 0:
            Path(args.html).write_text(html, encoding="utf-8")
    return 0


def _dead_count(config: Config) -> int | None:
    try:
        with Broker(config.broker) as broker:
            return broker.queue_state(topology.DEAD_QUEUE).messages
    except BrokerError:
        return None
