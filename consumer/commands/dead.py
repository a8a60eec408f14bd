"""``loginwatch dead list`` / ``loginwatch dead replay``: the dead queue, for operators."""

from __future__ import annotations

import argparse

from consumer.broker.deadletters import (
    ID_LENGTH,
    LIMIT,
    MIN_ID_PREFIX,
    DeadMessage,
    is_id,
    list_dead,
    replay,
    selector,
)
from consumer.commands._common import add_config_argument, config_of, open_broker
from schemas.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dead",
        help="list or replay messages in the dead queue",
        description="Inspect and replay loginwatch.dead: poison events and undeliverable alerts.",
    )
    actions = parser.add_subparsers(dest="dead_command", metavar="ACTION", required=True)
    show = actions.add_parser(
        "list",
        help="show every dead message: id, host, user, reason, time (leaves the queue as is)",
        description=(
            "Show every message in the dead queue. Messages are read without an ack and"
            " given back at once, so listing never loses or reorders anything."
        ),
    )
    add_config_argument(show)
    show.set_defaults(run=run_list)
    again = actions.add_parser(
        "replay",
        help="move dead messages back to the queue they came from",
        description=(
            "Republish the selected dead messages (confirmed) to the queue they came from,"
            " then remove them from the dead queue. A message that fails again comes back"
            " to the dead queue with a new reason."
        ),
    )
    add_config_argument(again)
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id",
        dest="ids",
        action="append",
        metavar="ID",
        help=(
            f"an id as dead list shows it ({ID_LENGTH} hex digits: the event id, or the body's"
            f" SHA-256 when it is no event), or its first {MIN_ID_PREFIX}+ (repeatable)"
        ),
    )
    which.add_argument("--all", action="store_true", help="replay every dead message")
    again.set_defaults(run=run_replay)


def _shown(text: str, width: int) -> str:
    """Hostile text (event fields, the broker's reason) as one printable line."""
    return text.encode("unicode_escape").decode("ascii")[:width]


def _line(message: DeadMessage) -> str:
    when = message.dead_at.strftime("%Y-%m-%d %H:%M:%SZ") if message.dead_at else "-"
    return (
        f"{_shown(message.id, ID_LENGTH):<32}  {when:<20}  {_shown(message.host, 40):<20}"
        f"  {_shown(message.user, 32):<12}  {_shown(message.reason, 300)}"
    )


def run_list(args: argparse.Namespace) -> int:
    with open_broker(config_of(args)) as broker:
        messages = list_dead(broker)
    if not messages:
        print("the dead queue is empty")
        return 0
    print(f"{'ID':<32}  {'DEAD SINCE':<20}  {'HOST':<20}  {'USER':<12}  REASON")
    for message in messages:
        print(_line(message))
    if len(messages) == LIMIT:
        print(f"only the first {LIMIT} are shown: replay or remove some, then list again")
    print(f"{len(messages)} dead message(s); replay with: loginwatch dead replay --id ID")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    if args.ids and not all(is_id(i) for i in args.ids):
        raise ConfigError(
            f"--id takes an id as dead list shows it: {MIN_ID_PREFIX} to {ID_LENGTH} hex digits"
        )
    with open_broker(config_of(args)) as broker:
        replayed = replay(broker, (lambda _m: True) if args.all else selector(args.ids))
    for message in replayed:
        print(f"replayed {message.id} to {message.origin}")
    if args.ids:
        found = {i for i in args.ids if any(m.id.startswith(i.lower()) for m in replayed)}
        missing = [i for i in args.ids if i not in found]
        if missing:
            print(f"loginwatch dead replay: not in the dead queue: {', '.join(missing)}")
            return 1
    print(f"{len(replayed)} message(s) replayed")
    return 0
