"""RabbitMQ definitions (``rabbitmqctl import_definitions``) from ``schemas.topology``.

The same declarations ``loginwatch setup`` makes, as a file an operator can
review, keep in version control and import before any loginwatch process runs.
Queues carry the arguments ``setup`` declares, so a later ``setup`` finds nothing
to disagree with; their limits are the policies ``setup`` applies
(``consumer.broker.queue_limits``), which can change on a live queue.
Users are not included: ``loginwatch host add`` creates host users with random
passwords, which have no place in a reviewed file.
"""

from __future__ import annotations

from typing import Any

from consumer.broker import queue_limits
from schemas import topology


def definitions(
    vhost: str,
    retry_delays: tuple[int, ...],
    limits: tuple[topology.PolicySpec, ...],
    nodes: int = 1,
    lanes: int = topology.DEFAULT_LANES,
) -> dict[str, Any]:
    """A definitions document creating ``vhost``, every exchange, queue (with members on
    ``nodes`` broker nodes, ``topology.quorum_members``; ``lanes`` alert lanes) and binding,
    exchange-to-exchange bindings included, and the ``limits`` policies.

    Importing it adds; it removes nothing (``topology.RETIRED_BINDINGS``, lanes beyond
    ``lanes``): ``loginwatch setup`` does that on a live install."""
    specs = topology.queue_specs(retry_delays, nodes, lanes)
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
        ]
        + [
            {
                "source": source,
                "vhost": vhost,
                "destination": destination,
                "destination_type": "exchange",
                "routing_key": key,
                "arguments": {},
            }
            for destination, source, key in topology.EXCHANGE_BINDINGS
        ],
        "policies": queue_limits.documents(vhost, limits),
    }
