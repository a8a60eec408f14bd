"""``loginwatch``: the central side's command line.

Each subcommand lives in its own module under ``consumer/commands/`` and
exposes ``register(subparsers)``, which adds its parser and sets ``run`` — a
function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Final

from consumer.core.display import InertStream
from schemas.errors import LoginwatchError

# Each subcommand, in the order ``--help`` lists them, and the module that registers it.
COMMANDS: Final[dict[str, str]] = {
    "setup": "setup",
    "worker": "run_worker",
    "digest": "run_digest",
    "status": "status",
    "dead": "dead",
    "check-config": "check_config",
    "send-test": "send_test",
    "definitions": "definitions",
    "host": "host",
    "broker-user": "broker_user",
    "silence": "silence",
    "web": "web",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: when it names a subcommand, with that one only, so that
    ``loginwatch host add`` does not import the worker's pipeline, the store's drivers
    and every channel (about 0.7 s of CPU a call); else with all of them (``--help``)."""
    parser = argparse.ArgumentParser(
        prog="loginwatch",
        description="Central side of loginwatch: SSH login alerts and digests by e-mail.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = next((word for word in argv or () if not word.startswith("-")), None)
    for command, module in COMMANDS.items():
        if named not in COMMANDS or named == command:
            importlib.import_module(f"consumer.commands.{module}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    # Whatever a command prints, and every error and log line, reaches the terminal inert.
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = InertStream(out), InertStream(err)
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = out, err


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Our broker module reports pika's failures in one clear line of its own.
    logging.getLogger("pika").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        status: int = args.run(args)
    except LoginwatchError as exc:
        print(f"loginwatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
