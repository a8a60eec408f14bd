"""Queue limits as RabbitMQ policies, applied with ``rabbitmqctl`` by ``loginwatch setup``.

Queue arguments cannot change on a live queue; a policy can, so limits set this
way reach existing installs too (``schemas.topology.policy_specs`` says which
limit each queue gets and why). AMQP cannot set a policy, and loginwatch needs no
management plugin: setup runs ``rabbitmqctl`` — only when the node it manages is
the broker setup is connected to (the same cluster name), never another node of
the machine. Otherwise, or when rabbitmqctl cannot run, it says so and how to
apply them (``loginwatch definitions``).
"""

from __future__ import annotations

import json
from typing import Any

from consumer.broker import rabbitmqctl
from schemas import topology
from schemas.errors import BrokerError


def documents(vhost: str, specs: tuple[topology.PolicySpec, ...]) -> list[dict[str, Any]]:
    """The ``policies`` of a definitions file (``rabbitmqctl import_definitions``)."""
    return [
        {
            "vhost": vhost,
            "name": spec.name,
            "pattern": spec.pattern,
            "apply-to": "queues",
            "definition": dict(spec.definition),
            "priority": topology.POLICY_PRIORITY,
        }
        for spec in specs
    ]


def apply(vhost: str, specs: tuple[topology.PolicySpec, ...], broker_cluster: str | None) -> None:
    """Set ``specs`` on ``vhost`` of the local node, which must be ``broker_cluster``'s.

    Raises:
        BrokerError: rabbitmqctl is missing or failed, or manages another broker.
    """
    status = rabbitmqctl.run("cluster_status", "--formatter", "json")
    try:
        local = json.loads(status).get("cluster_name")
    except (json.JSONDecodeError, AttributeError):
        raise BrokerError("rabbitmqctl cluster_status: not JSON") from None
    if broker_cluster is None or local != broker_cluster:
        raise BrokerError(f"rabbitmqctl here manages {local!r}, the broker is {broker_cluster!r}")
    document = json.dumps({"policies": documents(vhost, specs)})
    rabbitmqctl.run("import_definitions", stdin=document)
