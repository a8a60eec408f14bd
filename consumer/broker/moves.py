"""Moving every message of a queue we retire into a queue we keep, without losing one.

``loginwatch setup`` retires alert lanes when ``[broker] alert_lanes`` shrinks: a lane is
first unbound (nothing new reaches it), then what is still in it moves, one message at a
time, to the shared alerts queue, which every worker consumes. Each message is taken with
``basic_get`` unacked, republished (confirmed) under the central user with the identity it
had on arrival (``retries.republish_headers``: the worker judges it as it would have), and
only then acked: a crash in between leaves one copy in each queue, never none (the sent log
folds the duplicate). The worker's lane probes are dropped, not moved.
"""

from __future__ import annotations

from consumer.broker.connection import Broker
from consumer.broker.retries import republish_headers
from schemas import topology

LIMIT = 1_000_000  # messages one call moves at most (a queue holds 100,000 by default)


def move_all(broker: Broker, source: str, target: str = topology.ALERTS_QUEUE) -> int:
    """Move every message of ``source`` to ``target`` (through the reroute exchange, where
    each of our queues is bound by its name); returns how many moved.

    Raises:
        PublishRefused: ``target`` refused one (it stays in ``source``).
        QueueMissing, BrokerError.
    """
    moved = 0
    while moved < LIMIT and (delivery := broker.get(source)) is not None:
        if delivery.type == topology.PROBE_TYPE and delivery.user_id == broker.user:
            broker.ack(delivery)  # a lane probe of ours: it measured a lane that goes away
            continue
        broker.publish(topology.REROUTE_EXCHANGE, target, delivery.body,
                       headers=republish_headers(delivery, broker.user),
                       message_id=delivery.message_id, timestamp=delivery.timestamp)  # fmt: skip
        broker.ack(delivery)
        moved += 1
    return moved
