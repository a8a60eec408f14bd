"""What the broker hands the worker: plain data, no pika (consumer/broker.py makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One message as the broker handed it to us; ``tag`` is only valid on ``generation``."""

    tag: int
    body: bytes
    routing_key: str
    redelivered: bool
    message_id: str | None = None
    user_id: str | None = None
    timestamp: int | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    generation: int = 0


@dataclass(frozen=True)
class QueueState:
    name: str
    messages: int  # ready (not counting unacked deliveries)
    consumers: int
