"""Alert lanes in tests: which lane a speaker hashes to, and hosts that hash apart.

RabbitMQ's consistent-hash exchange picks a lane from the routing key (``schemas/
topology.py``); which one depends on the broker's hash and the order the lanes were bound,
so a test asks the broker: it publishes one marker with the speaker's key straight to the
lanes exchange (as the central user; no digest copy) and sees which lane holds it.
"""

from __future__ import annotations

import time

import pika

from schemas import topology
from tests.support.services import Vhost


def lane_of(
    where: Vhost | str, user: str, timeout: float = 10, kind: str = topology.EVENT_TYPE
) -> str:
    """The lane ``user``'s messages of type ``kind`` land in (the marker is taken out
    again), in a vhost or at an amqp:// URL."""
    url = where if isinstance(where, str) else where.url()
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        props = pika.BasicProperties(user_id="guest", headers={"x-test-marker": user})
        channel.basic_publish(topology.LANES_EXCHANGE, topology.routing_key(user, kind),
                              b"marker", props, mandatory=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(topology.DEFAULT_LANES):
                lane = topology.lane_queue(index)
                method, props, _ = channel.basic_get(lane, auto_ack=False)
                if method is None:
                    continue
                channel.basic_ack(method.delivery_tag)
                if (props.headers or {}).get("x-test-marker") == user:
                    return lane
            connection.sleep(0.05)
    raise AssertionError(f"no lane took {user}'s marker")


def hosts_in_other_lanes(vhost: Vhost, flooder: str, names: list[str]) -> tuple[str, list[str]]:
    """The flooder's lane, and those of ``names`` (host names) whose lane differs."""
    flooded = lane_of(vhost, topology.host_user(flooder))
    return flooded, [n for n in names if lane_of(vhost, topology.host_user(n)) != flooded]


def lanes_of(vhost: Vhost, user: str) -> set[str]:
    """Every lane one speaker reaches: one per message type (events, heartbeats, logouts)."""
    return {lane_of(vhost, user, kind=kind) for kind in topology.MESSAGE_TYPES}
