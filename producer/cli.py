"""The full command line of ``loginwatch-hook`` (everything but the plain PAM run).

``producer.hook`` handles the PAM invocation itself without argparse; any
other arguments, ``--help`` included, are parsed here, and the hook runs what they ask
for: itself when they name no command (``run_hook``), else ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from producer import shared, spool
from schemas.config import Config, load_config
from schemas.errors import LoginwatchError

PAM_LINE = "session optional pam_exec.so quiet /usr/local/sbin/loginwatch-hook"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loginwatch-hook",
        description=(
            "The host side of loginwatch. Without a command it is the PAM hook: it spools "
            "this login's event, starts a detached publisher and exits 0 at once, whatever "
            f"happens. Add to /etc/pam.d/sshd:  {PAM_LINE}"
        ),
    )
    _add_config(parser, default=None)
    parser.add_argument(
        "--outcome",
        choices=shared.OUTCOMES,
        default="",
        help="what the PAM stack decided, for a hook placed on a failure or success branch "
        "(default: success for sessions, unknown otherwise)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    flush = commands.add_parser(
        "flush",
        help="publish every spooled event now (for a systemd timer); exit 1 if any are left",
        description="Publish every spooled event with publisher confirms and delete what "
        "the broker confirmed. Exit status 1 when events are left (broker unreachable).",
    )
    spool_cmd = commands.add_parser(
        "spool",
        help="show what waits in the spool",
        description="Show the spool directory, the events waiting in it and the dropped count.",
    )
    # `loginwatch-hook flush --config X` works as well as `loginwatch-hook --config X flush`.
    for sub in (flush, spool_cmd):
        _add_config(sub, default=argparse.SUPPRESS)
    return parser


def _add_config(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (default: $LOGINWATCH_CONFIG — ignored when run by PAM —, "
        "else /etc/loginwatch/loginwatch.toml)",
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments of ``loginwatch-hook``; ``command`` is None for the hook itself."""
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Run ``flush`` or ``spool``; returns the exit status."""
    path = shared.config_path(args.config)
    try:
        config = load_config(path)
        if args.command == "flush":
            return _flush(config)
        return _show_spool(config.spool.dir)
    except (LoginwatchError, OSError) as exc:  # OSError: an unsafe or unusable spool
        print(f"loginwatch-hook {args.command}: {exc}", file=sys.stderr)
        return 1


def _flush(config: Config) -> int:
    from producer.publisher import flush  # noqa: PLC0415 - pika only when publishing

    # A hook's publisher may hold the spool: let it finish (it has its own bound).
    result = flush(config, wait=config.broker.publish_timeout + 5)
    if result.busy:
        print(f"another publisher is working on {config.spool.dir}; {result.left} waiting")
        return 0
    print(f"published {result.published}, left {result.left}, unusable {result.quarantined}")
    return 1 if result.left else 0


def _show_spool(spool_dir: str) -> int:
    paths = spool.pending(spool_dir)
    print(f"spool:   {spool_dir}")
    print(f"waiting: {len(paths)}")
    if paths:
        oldest = min(_captured_at(path) for path in paths)
        print(f"oldest:  {age(time.time() - oldest)} ago")
    if os.path.isdir(spool_dir):
        print(f"dropped: {spool.read_dropped(spool_dir)} (reported with the next event)")
    return 0


def _captured_at(path: str) -> float:
    """When a record was captured (its name starts with the time in ns), else its mtime."""
    stamp = os.path.basename(path).split("-", 1)[0]
    if len(stamp) == 20 and stamp.isdigit():
        return int(stamp) / 1e9
    try:
        return os.lstat(path).st_mtime
    except OSError:  # published meanwhile
        return time.time()


def age(seconds: float) -> str:
    """``42s``, ``3m12s``, ``2h05m``, ``3d04h``: how long an event has waited."""
    whole = max(int(seconds), 0)
    minutes, secs = divmod(whole, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if days:
        return f"{days}d{hrs:02d}h"
    if hours:
        return f"{hours}h{mins:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
