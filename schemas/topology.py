"""RabbitMQ names, defined once for the hook, the worker, setup and deploy/.

Routing keys are the event's kind (``login``, ``logout``, ``failure`` …); the
alerts and digest queues both bind ``#``: the worker decides what is mailed now,
the digest scheduler stores everything for the periodic summary.
"""

from __future__ import annotations

from typing import Final

EXCHANGE: Final = "loginwatch.events"
EXCHANGE_TYPE: Final = "topic"

ALERTS_QUEUE: Final = "loginwatch.alerts"
DIGEST_QUEUE: Final = "loginwatch.digest"
DEAD_QUEUE: Final = "loginwatch.dead"
# Dead-lettered messages and parked retries travel through this direct exchange,
# routed by the name of the queue they should land in.
REROUTE_EXCHANGE: Final = "loginwatch.reroute"

# One queue per delay, because a TTL only expires messages at a queue's head.
RETRY_DELAYS_S: Final = (30, 120, 600, 1800)

BINDING_KEY: Final = "#"
CONTENT_TYPE: Final = "application/msgpack"
MESSAGE_TYPE: Final = "loginwatch.LoginEvent"

# Headers.
HEADER_REASON: Final = "x-loginwatch-reason"  # why a message is in the dead queue
HEADER_ORIGIN: Final = "x-loginwatch-origin"  # the work queue a retry returns to
HEADER_ATTEMPT: Final = "x-loginwatch-attempt"  # parked deliveries so far

# How long a work queue redelivers a message that keeps crashing a worker.
DELIVERY_LIMIT: Final = 20


def retry_queue(delay_s: int) -> str:
    return f"loginwatch.retry.{delay_s}s"


def routing_key(kind: str) -> str:
    return kind
