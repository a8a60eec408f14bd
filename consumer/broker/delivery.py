"""What the broker hands the worker: plain data, no pika (``broker/connection.py`` makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One message as the broker handed it to us; ``tag`` is only valid on ``generation``,
    on the channel of ``queue`` (the queue it was consumed from; "" for a ``get``)."""

    tag: int
    body: bytes
    routing_key: str
    redelivered: bool
    message_id: str | None = None
    user_id: str | None = None
    timestamp: int | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    generation: int = 0
    # When it reached this process (epoch s, this machine's clock): what latency metrics
    # count from. ``timestamp`` is the publisher's word, never used for a duration.
    arrived: float = 0.0
    queue: str = ""
    type: str | None = None  # the AMQP type property (the sender's choice, like the rest)


@dataclass(frozen=True)
class QueueState:
    name: str
    messages: int  # ready (not counting unacked deliveries)
    consumers: int
