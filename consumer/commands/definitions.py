"""``loginwatch definitions``: print RabbitMQ definitions for the pipeline's topology."""

from __future__ import annotations

import argparse
import json
import os

from consumer.broker.definitions_file import definitions
from consumer.commands._common import add_config_argument, config_of
from schemas import topology
from schemas.config import Config, config_path
from schemas.nodes import broker_vhost


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "definitions",
        help="print RabbitMQ definitions (exchanges, queues, bindings, limits) as JSON",
        description=(
            "Print the exchanges, queues, bindings and queue-limit policies `loginwatch setup`"
            " declares as a RabbitMQ definitions file, for `rabbitmqctl import_definitions FILE`"
            " on the broker machine. The vhost is the config's [broker] url's (created by the"
            " import if missing) unless --vhost is given; retry queues follow [worker]"
            " retry_delays, lanes [broker] alert_lanes, limits [broker] queue_max_length and"
            " queue_max_bytes, the members of each queue the number of nodes in [broker] urls."
            " Host users' topic permissions are not in it (users are not): `loginwatch host"
            " add` and `loginwatch setup` set them."
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
    lanes = config.broker.alert_lanes
    document = definitions(vhost, config.worker.retry_delays, limits, nodes, lanes)
    print(json.dumps(document, indent=2))
    return 0
