"""RabbitMQ definitions (``rabbitmqctl import_definitions``) from ``schemas.topology``.

The same declarations ``loginwatch setup`` makes, as a file an operator can
review, keep in version control and import before any loginwatch process runs.
Queues carry the arguments ``setup`` declares, so a later ``setup`` finds nothing
to disagree with; their limits are the policies ``setup`` applies
(``consumer.policies``), which can change on a live queue.
Users are not included: ``loginwatch host add`` creates host users with random
passwords, which have no place in a reviewed file.
"""

from __future__ import annotations

from typing import Any

from consumer import policies
from schemas import topology


def definitions(
    vhost: str,
    retry_delays: tuple[int, ...],
    limits: tuple[topology.PolicySpec, ...],
    nodes: int = 1,
) -> dict[str, Any]:
    """A definitions document creating ``vhost``, every exchange, queue (with members on
    ``nodes`` broker nodes, ``topology.quorum_members``) and binding, and the ``limits``
    policies."""
    specs = topology.queue_specs(retry_delays, nodes)
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {
                "name": name,
                "vhost": vhost,
                "type": kind,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for name, kind in topology.EXCHANGES
        ],
        "queues": [
            {
                "name": spec.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(spec.arguments),
            }
            for spec in specs
        ],
        "bindings": [
            {
                "source": exchange,
                "vhost": vhost,
                "destination": spec.name,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for spec in specs
            for exchange, key in spec.bindings
        ],
        "policies": policies.documents(vhost, limits),
    }
