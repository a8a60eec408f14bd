"""``loginwatch status``: queue depths and consumers, read with passive declares."""

from __future__ import annotations

import argparse

from consumer.cli import add_config_argument
from consumer.commands._common import config_of, open_broker
from schemas import topology
from schemas.errors import QueueMissing


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show queue depths, consumers and the dead-letter count",
        description=(
            "Show, for every loginwatch queue, the messages ready and the consumers attached"
            " (passive declares: nothing is changed). Exits 1 when a queue is missing."
            " the dead queue holds messages (see loginwatch dead list)."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    missing = 0
    dead = 0
    with open_broker(config) as broker:
        print(f"{'queue':<28} {'ready':>8} {'consumers':>9}")
        for spec in topology.queue_specs(config.worker.retry_delays):
            try:
                state = broker.queue_state(spec.name)
            except QueueMissing:
                missing += 1
                print(f"{spec.name:<28} {'missing (run loginwatch setup)':>18}")
                continue
            print(f"{state.name:<28} {state.messages:>8} {state.consumers:>9}")
            if spec.name == topology.DEAD_QUEUE:
                dead = state.messages
    if dead:
        print(f"{dead} message(s) in the dead queue: loginwatch dead list")
    return 1 if missing else 0
