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

from producer import ledger, shared, slots
from producer.backlog import Backlog
from schemas.config import Config, load_config
from schemas.errors import LoginwatchError
from schemas.version import VERSION

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
        "--version",
        action="version",
        version=f"loginwatch-hook {VERSION} (foreground: Python {sys.version.split()[0]})",
        help="the version and the foreground in use (the C front-end names itself)",
    )
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
        help="publish every spooled event now, the logouts wtmp recorded since, and a "
        "heartbeat (for a systemd timer); exit 1 if any are left",
        description="Publish every spooled event with publisher confirms and delete what "
        "the broker confirmed; then the sessions that ended since the last flush (from wtmp "
        "and wtmpdb, as `last` shows them) and a heartbeat. Exit status 1 when events are "
        "left or the heartbeat did not get through (broker unreachable).",
    )
    goodbye = commands.add_parser(
        "goodbye",
        help="tell the central side this host's hook stops on purpose (a unit's ExecStop, "
        "the uninstall): its silence that follows is no alarm",
        description="Publish a heartbeat that says goodbye. Exit status 1 when the broker "
        "did not take it.",
    )
    goodbye.add_argument(
        "--why", choices=("stop", "shutdown", "uninstall"), default="stop",
        help="what stops the hook (default: stop)",
    )  # fmt: skip
    spool_cmd = commands.add_parser(
        "spool",
        help="show what waits in the spool",
        description="Show the spool directory, the events waiting in it and the dropped count.",
    )
    # `loginwatch-hook flush --config X` works as well as `loginwatch-hook --config X flush`.
    for sub in (flush, goodbye, spool_cmd):
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
    """Run ``flush``, ``goodbye`` or ``spool``; returns the exit status."""
    path = shared.config_path(args.config)
    try:
        config = load_config(path)
        if args.command == "flush":
            return _flush(config)
        if args.command == "goodbye":
            return _goodbye(config, args.why)
        return _show_spool(config.spool.dir)
    except (LoginwatchError, OSError) as exc:  # OSError: an unsafe or unusable spool
        print(f"loginwatch-hook {args.command}: {exc}", file=sys.stderr)
        return 1


def _flush(config: Config) -> int:
    from producer.flush import flush  # noqa: PLC0415 - pika only when publishing

    # A hook's publisher may hold the spool: let it finish (it has its own bound).
    result = flush(config, wait=config.broker.publish_timeout + 5)
    status = 0
    if result.busy:
        print(f"another publisher is working on {config.spool.dir}; {result.left} waiting")
    else:
        print(f"published {result.published}, left {result.left}, unusable {result.quarantined}")
        status = 1 if result.left else 0
    return max(status, _reports(config))


def _reports(config: Config) -> int:
    """Send the logouts recorded since the last flush, then a heartbeat; exit status."""
    from producer import logouts, reports  # noqa: PLC0415 - pika only when publishing

    found = logouts.Recovery.load(config)
    try:
        reports.send(config, [*found.logouts, reports.heartbeat(config)])
    except LoginwatchError as exc:
        print(f"heartbeat not sent ({len(found.logouts)} logout(s) wait for the next flush): {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    found.commit()
    print(f"heartbeat sent, with {len(found.logouts)} logout(s)")
    return 0


def _goodbye(config: Config, why: str) -> int:
    from producer import reports  # noqa: PLC0415 - pika only when publishing

    reports.send(config, [reports.heartbeat(config, goodbye=True, why=why)])
    print(f"goodbye sent ({why})")
    return 0


def _show_spool(spool_dir: str) -> int:
    print(f"spool:   {spool_dir}")
    try:
        backlog = Backlog(spool_dir)
    except FileNotFoundError:
        print("waiting: 0")
        return 0
    with backlog:
        entries = backlog.pending()
        in_slots = sum(1 for e in entries if e.slot >= 0)
        total_slots = slots.count(backlog.slot_fd)
    print(f"waiting: {len(entries)}")
    if entries:
        oldest = min(_captured_at(spool_dir, e.name) if e.name else e.time_ns / 1e9
                     for e in entries)  # fmt: skip
        print(f"oldest:  {age(time.time() - oldest)} ago")
    if total_slots:
        print(f"slots:   {in_slots} of {total_slots} in use, {len(entries) - in_slots} in files")
    else:
        print("slots:   none yet (the next publisher makes them); every record is a file")
    dropped = ledger.read(spool_dir)
    print(f"dropped: {dropped.total} (reported with the next event)")
    if dropped.total:
        print(f"         {dropped.logins} of them logins or logouts; listed:")
    for drop in dropped.listed:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drop.time_ns / 1e9))
        what = "login/logout" if drop.urgent else "other"
        print(f"         {when} {what} user {_shown(drop.user)} from {_shown(drop.remote)}")
    return 0


def _shown(raw: bytes) -> str:
    """Hostile bytes for a terminal, quoted: control and invisible characters escaped
    (``repr``), as are the bytes that are not UTF-8."""
    return repr(raw.decode("utf-8", "backslashreplace"))


def _captured_at(spool_dir: str, name: str) -> float:
    """When a record was captured (its name starts with the time in ns), else its mtime."""
    stamp = name.split("-", 1)[0]
    if len(stamp) == 20 and stamp.isdigit():
        return int(stamp) / 1e9
    try:
        return os.lstat(os.path.join(spool_dir, name)).st_mtime
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
