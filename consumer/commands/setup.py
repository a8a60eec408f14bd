"""``loginwatch setup``: declare the exchanges and queues the pipeline needs, and their limits."""

from __future__ import annotations

import argparse
import sys

from consumer import policies
from consumer.broker import Broker
from consumer.cli import add_config_argument
from consumer.commands._common import config_of, open_broker
from schemas import topology
from schemas.config import broker_vhost, config_path
from schemas.errors import BrokerError, TopologyConflict

MEMBERS = "x-quorum-initial-group-size"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "setup",
        help="declare the RabbitMQ exchanges and queues and their limits (safe to rerun)",
        description=(
            "Declare the loginwatch exchanges, the alerts, digest, retry and dead queues and"
            " their bindings, and apply the queue limits ([broker] queue_max_length,"
            " queue_max_bytes) as RabbitMQ policies with rabbitmqctl, which must run here, on"
            " the broker machine (as root). Idempotent: rerunning it on a live system changes"
            " nothing but the limits and loses no message. A queue that exists with other"
            " arguments is reported, never deleted."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def _declare(
    broker: Broker, specs: tuple[topology.QueueSpec, ...], retry_delays: tuple[int, ...]
) -> list[str]:
    """Declare ``specs``; a queue that exists from before the cluster (declared without
    members for it) is declared as it was. Returns the names of those.

    Raises:
        TopologyConflict: a queue exists with other arguments than its members.
        BrokerError: any other failure.
    """
    before = {spec.name: spec for spec in topology.queue_specs(retry_delays)}
    kept = []
    for spec in specs:
        try:
            broker.declare((spec,))
        except TopologyConflict as exc:
            if MEMBERS not in str(exc) or spec.arguments == before[spec.name].arguments:
                raise
            broker.declare((before[spec.name],))
            kept.append(spec.name)
    return kept


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    specs = topology.queue_specs(config.worker.retry_delays, len(config.broker.nodes))
    limits = topology.policy_specs(config.broker.queue_max_length, config.broker.queue_max_bytes)
    vhost = broker_vhost(config.broker)
    with open_broker(config) as broker:
        kept = _declare(broker, specs, config.worker.retry_delays)
        cluster = broker.cluster_name
    if kept:
        print(
            f"loginwatch setup: {', '.join(kept)} existed with the members they were declared"
            " with (a queue's arguments cannot change), kept as they are; to place a member on"
            " every node run, on any node: rabbitmq-queues grow NODE all for each node"
            " (README: Queues that survive a node)",
            file=sys.stderr,
        )
    names = ", ".join(spec.name for spec in specs)
    print(f"declared exchanges {topology.EXCHANGE}, {topology.REROUTE_EXCHANGE}; queues {names}")
    try:
        policies.apply(vhost, limits, cluster)
    except BrokerError as exc:
        # The queues work without limits; say loudly that they have none yet.
        print(
            f"loginwatch setup: queue limits NOT applied ({exc}); on the broker machine run:"
            f" loginwatch definitions --config {config_path(args.config)} > d.json &&"
            " rabbitmqctl import_definitions d.json",
            file=sys.stderr,
        )
        return 0
    print(f"applied policies {', '.join(p.name for p in limits)} (queue limits) on vhost {vhost}")
    return 0
