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

from schemas.errors import LoginwatchError

# The subcommand modules, in the order ``--help`` lists them.
COMMANDS: Final[tuple[str, ...]] = (
    "setup",
    "worker",
    "digest",
    "status",
    "dead",
    "check_config",
    "send_test",
    "definitions",
    "host",
    "broker_user",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loginwatch",
        description="Central side of loginwatch: SSH login alerts and digests by e-mail.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"consumer.commands.{name}").register(subparsers)
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $LOGINWATCH_CONFIG, else /etc/loginwatch/loginwatch.toml)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
