"""Reading and replaying the dead queue without ever losing a message.

Reading: every message is taken with ``basic_get`` *without* an ack, then all
are given back with ``basic_nack(requeue=True)``. The broker holds each message
the whole time — if ``dead list`` dies half way, its channel closes and the
broker requeues the lot — so listing cannot lose or duplicate anything (a
consume-and-republish cycle could, between the publish and the ack). The dead
queue has no delivery limit, so the requeue does not count against a message.

Replaying: a selected message is published — confirmed — to the queue it came
from (through the reroute exchange), and only then acked in the dead queue; a
crash in between leaves one copy in each, never none. The copy is published under
the central broker user, with the host's user carried along (see
``consumer/stages/decode``), so the identity check still applies to it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consumer.broker import Broker
from consumer.delivery import Delivery
from consumer.worker import republish_headers
from schemas import event as wire
from schemas import topology
from schemas.errors import DecodeError

MIN_ID_PREFIX = 6
_DROPPED_ON_REPLAY = (topology.HEADER_REASON, topology.HEADER_DEAD_AT, topology.HEADER_ATTEMPT)


@dataclass(frozen=True)
class DeadMessage:
    id: str  # the event id (hex), else the message id, else "-"
    host: str
    user: str
    reason: str
    dead_at: datetime | None
    origin: str


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _last_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]  # RabbitMQ puts the most recent first
    return {}


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return None


def describe(delivery: Delivery) -> DeadMessage:
    """What ``dead list`` shows of one message (the body may be poison: best effort)."""
    headers = delivery.headers
    death = _last_death(headers)
    try:
        event = wire.decode(delivery.body)
        event_id, host, user = event.id_hex, event.host, event.user
    except DecodeError:
        event_id, host, user = _text(delivery.message_id) or "-", "?", "?"
    reason = _text(headers.get(topology.HEADER_REASON))
    if not reason and death:
        reason = f"broker: {_text(death.get('reason'))} in {_text(death.get('queue'))}"
    origin = _text(headers.get(topology.HEADER_ORIGIN)) or _text(death.get("queue"))
    return DeadMessage(
        id=event_id,
        host=host,
        user=user,
        reason=reason or "unknown",
        dead_at=_when(headers.get(topology.HEADER_DEAD_AT)) or _when(death.get("time")),
        origin=origin or topology.ALERTS_QUEUE,
    )


@contextmanager
def _all_held(broker: Broker, limit: int) -> Iterator[list[Delivery]]:
    """Every dead message (up to ``limit``), held unacked; the ones left are requeued."""
    held: list[Delivery] = []
    try:
        while len(held) < limit and (delivery := broker.get(topology.DEAD_QUEUE)) is not None:
            held.append(delivery)
        yield held
    finally:
        if broker.is_open:
            for delivery in held:
                broker.requeue(delivery)


def list_dead(broker: Broker, limit: int = 10_000) -> list[DeadMessage]:
    """The dead queue's messages, oldest first; the queue is left as it was.

    Raises:
        BrokerError, QueueMissing.
    """
    with _all_held(broker, limit) as held:
        return [describe(delivery) for delivery in held]


def selector(ids: Collection[str]) -> Callable[[DeadMessage], bool]:
    """Matches a message whose id equals, or starts with, one of ``ids``."""
    wanted = tuple(i.lower() for i in ids)
    return lambda message: any(message.id.lower().startswith(i) for i in wanted)


def replay(
    broker: Broker, select: Callable[[DeadMessage], bool], limit: int = 10_000
) -> list[DeadMessage]:
    """Move the selected dead messages back to their origin queues; returns them.

    Raises:
        PublishRefused: the origin queue is gone (the message stays dead).
        BrokerError, QueueMissing.
    """
    replayed: list[DeadMessage] = []
    with _all_held(broker, limit) as held:
        for delivery in list(held):
            message = describe(delivery)
            if not select(message):
                continue
            headers = republish_headers(delivery, broker.user)
            for name in _DROPPED_ON_REPLAY:
                headers.pop(name, None)
            broker.publish(topology.REROUTE_EXCHANGE, message.origin, delivery.body,
                           headers=headers, message_id=delivery.message_id,
                           timestamp=delivery.timestamp)  # fmt: skip
            broker.ack(delivery)
            held.remove(delivery)
            replayed.append(message)
    return replayed
