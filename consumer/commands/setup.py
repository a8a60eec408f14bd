"""``loginwatch setup``: declare the exchanges and queues the pipeline needs, their limits,
and the routing keys each host user may publish with; move a live install to this topology."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from consumer.broker import host_users, queue_limits, topic_keys
from consumer.broker.connection import Broker
from consumer.broker.moves import move_all
from consumer.commands._common import add_config_argument, config_of, open_broker
from consumer.core.display import visible
from schemas import topology
from schemas.config import Config, config_path
from schemas.errors import BrokerError, TopologyConflict
from schemas.nodes import broker_vhost

MEMBERS = "x-quorum-initial-group-size"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "setup",
        help="declare the RabbitMQ exchanges, queues, lanes and their limits (safe to rerun)",
        description=(
            "Declare the loginwatch exchanges, the alerts queue and its lanes ([broker]"
            " alert_lanes), the digest, retry and dead queues and their bindings; remove the"
            " bindings an earlier release made and this one no longer wants; apply the queue"
            " limits ([broker] queue_max_length, queue_max_bytes) as RabbitMQ policies; give"
            " every host user without a topic permission one (its own routing keys, and an old"
            " hook's one-word keys until `loginwatch host strict`), and every host user of the"
            " vhost that has none its connection and channel limits (as host add does)."
            " Policies, topic permissions and limits go through rabbitmqctl, which must run"
            " here, on the broker machine (as root). Idempotent: rerunning it on a live system"
            " loses no message. Lanes beyond alert_lanes are unbound, their messages moved to"
            " loginwatch.alerts, then deleted. A queue that exists with other arguments is"
            " reported, never deleted."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def _declare(broker: Broker, specs: tuple[topology.QueueSpec, ...], config: Config) -> list[str]:
    """Declare ``specs``; a queue that exists from before the cluster (declared without
    members for it) is declared as it was. Returns the names of those.

    Raises:
        TopologyConflict: a queue exists with other arguments than its members.
        BrokerError: any other failure.
    """
    lanes = config.broker.alert_lanes
    before = {spec.name: spec for spec in topology.queue_specs(config.worker.retry_delays,
                                                               lanes=lanes)}  # fmt: skip
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


def _retire_lanes(broker: Broker, lanes: int) -> list[str]:
    """Lanes beyond ``lanes`` (``alert_lanes`` shrank): unbound, emptied into the shared
    queue, deleted once nobody consumes them. Returns a line per lane retired.

    Raises:
        PublishRefused: the shared queue refused a message (it stays in its lane).
        BrokerError: the broker failed.
    """
    said = []
    for index in range(lanes, topology.MAX_LANES):
        name = topology.lane_queue(index)
        held = broker.retire_lane(name)
        if held is None:
            continue
        moved = move_all(broker, name) if held.messages else 0
        held = broker.retire_lane(name)
        line = f"retired lane {name}: {moved} message(s) moved to {topology.ALERTS_QUEUE}"
        if held is not None and held.consumers:
            line += (f"; {held.consumers} worker(s) still consume it: restart them with"
                     " this alert_lanes, then run setup again to delete it")  # fmt: skip
        elif held is not None:
            line += f"; {held.messages} arrived meanwhile: run setup again"
        said.append(line)
    return said


def _host_keys(config: Config, vhost: str, permissions: list[dict[str, Any]]) -> str:
    """Topic permissions for host users and relays that have none yet (made before lanes),
    of the users with ``permissions`` on ``vhost``.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    users = topic_keys.speakers(permissions, config.worker.host_users)
    applied = topic_keys.upgrade(vhost, users)
    if not applied.old_hooks:
        return f"routing keys: every one of {len(users)} host user(s) has its topic permission"
    names = ", ".join(visible(u) for u in applied.old_hooks[:10])
    names += " …" if len(applied.old_hooks) > 10 else ""
    return (
        f"routing keys: {len(applied.old_hooks)} host user(s) made before lanes ({names}) may"
        " publish their own keys and an old hook's one-word keys, which share"
        f" {topology.ALERTS_QUEUE}; once a host's hook is upgraded: loginwatch host strict NAME"
    )


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    lanes = config.broker.alert_lanes
    specs = topology.queue_specs(config.worker.retry_delays, len(config.broker.nodes), lanes)
    limits = topology.policy_specs(config.broker.queue_max_length, config.broker.queue_max_bytes)
    vhost = broker_vhost(config.broker)
    with open_broker(config) as broker:
        kept = _declare(broker, specs, config)
        retired = _retire_lanes(broker, lanes)
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
    exchanges = ", ".join(name for name, _ in topology.EXCHANGES)
    print(f"declared exchanges {exchanges}; queues {names}")
    print(f"{topology.ALERTS_QUEUE} takes old hooks' one-word routing keys and parked alerts;"
          f" every other event goes to its speaker's lane (1 of {lanes})")  # fmt: skip
    for line in retired:
        print(line)
    try:
        queue_limits.apply(vhost, limits, cluster)
        # Read once for the routing keys and the limits: neither changes who has permissions.
        permissions = host_users.vhost_permissions(vhost)
        keys = _host_keys(config, vhost, permissions)
    except BrokerError as exc:
        # The queues work without limits; say loudly that they have none yet.
        print(
            f"loginwatch setup: queue limits NOT applied ({exc}), nor host users' routing keys;"
            f" on the broker machine run: loginwatch definitions --config"
            f" {config_path(args.config)} > d.json && rabbitmqctl import_definitions d.json;"
            " then loginwatch setup there, as root, to limit the host users",
            file=sys.stderr,
        )
        return 0
    print(f"applied policies {', '.join(p.name for p in limits)} (queue limits) on vhost {vhost}")
    print(keys)
    # Host users made before `host add` set limits get them now (the node is the one
    # queue_limits.apply checked: rabbitmqctl here manages the connected broker).
    limited = host_users.limit_all(vhost, permissions)
    if limited:
        shown = ", ".join(visible(user) for user in limited[:20])
        more = f" and {len(limited) - 20} more" if len(limited) > 20 else ""
        print(f"limited {len(limited)} host user(s) to {_limits()}: {shown}{more}")
    return 0


def _limits() -> str:
    return ", ".join(f"{key} {value}" for key, value in host_users.HOST_LIMITS.items())
