"""``loginwatch setup``: declare the exchanges and queues the pipeline needs."""

from __future__ import annotations

import argparse

from consumer.cli import add_config_argument
from consumer.commands._common import config_of, open_broker
from schemas import topology


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "setup",
        help="declare the RabbitMQ exchanges and queues (safe to rerun)",
        description=(
            "Declare the loginwatch exchanges, the alerts, digest, retry and dead queues and"
            " their bindings. Idempotent: rerunning it on a live system changes nothing and"
            " loses no message. A queue that exists with other arguments is reported, never"
            " deleted."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    specs = topology.queue_specs(config.worker.retry_delays)
    with open_broker(config) as broker:
        broker.declare(specs)
    names = ", ".join(spec.name for spec in specs)
    print(f"declared exchanges {topology.EXCHANGE}, {topology.REROUTE_EXCHANGE}; queues {names}")
    return 0
