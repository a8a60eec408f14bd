"""``loginwatch definitions``: print RabbitMQ definitions for the pipeline's topology."""

from __future__ import annotations

import argparse
import json
import os

from consumer.cli import add_config_argument
from consumer.commands._common import config_of
from consumer.definitions import definitions
from schemas import topology
from schemas.config import Config, broker_vhost, config_path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "definitions",
        help="print RabbitMQ definitions (exchanges, queues, bindings, limits) as JSON",
        description=(
            "Print the exchanges, queues, bindings and queue-limit policies `loginwatch setup`"
            " declares as a RabbitMQ definitions file, for `rabbitmqctl import_definitions FILE`"
            " on the broker machine. The vhost is the config's [broker] url's (created by the"
            " import if missing) unless --vhost is given; retry queues follow [worker]"
            " retry_delays, limits [broker] queue_max_length and queue_max_bytes, the members of"
            " each queue the number of nodes in [broker] urls."
        ),
    )
    add_config_argument(parser)
    parser.add_argument("--vhost", help="target vhost (default: the config's)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Without a config file the defaults apply: the command also serves to look.
    path = config_path(args.config)
    config = config_of(args) if args.config or os.path.exists(path) else Config()
    vhost = args.vhost or broker_vhost(config.broker)
    limits = topology.policy_specs(config.broker.queue_max_length, config.broker.queue_max_bytes)
    nodes = len(config.broker.nodes)
    print(json.dumps(definitions(vhost, config.worker.retry_delays, limits, nodes), indent=2))
    return 0
