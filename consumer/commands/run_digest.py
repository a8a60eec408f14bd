"""``loginwatch digest``: the digest scheduler, ``--preview`` and ``--send-now``.

Test-only environment (read here, at the edge, and documented as such in docs/routing-and-mail.md):
``LOGINWATCH_TEST_CLOCK`` (ISO time: the scheduler's clock starts there and runs on in
real time) and ``LOGINWATCH_TEST_CRASH_AT`` (``after-claim``, ``after-smtp``,
``after-record``: the process SIGKILLs itself at that point of sending a digest).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from consumer.broker.connection import Broker, connection_parameters
from consumer.commands._common import add_config_argument, config_of
from consumer.core import metrics_server
from consumer.digest.intake import LOOKBACK
from consumer.digest.process import DigestProcess, build
from consumer.digest.windows import current
from schemas import topology
from schemas.config import Config
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


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    environ = dict(os.environ)
    digest = build(config, clock=test_clock(environ), checkpoint=crash_point(environ))
    try:
        if args.preview:
            return preview(config, digest, args)
        if args.send_now:
            return send_now(digest)
        # A standby touches the broker only when it takes over: read the password file
        # now, so a bad one is one line at start, not silence until the active one dies.
        connection_parameters(config.broker)
        metrics_server.start(config.metrics, environ)  # never raises: a warning at most
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
