"""Reading and replaying the dead queue without ever losing a message.

Reading: every message is taken with ``basic_get`` *without* an ack, then all
are given back with ``basic_nack(requeue=True)``. The broker holds each message
the whole time — if ``dead list`` dies half way, its channel closes and the
broker requeues the lot — so listing cannot lose or duplicate anything (a
consume-and-republish cycle could, between the publish and the ack). The dead
queue has no delivery limit, so the requeue does not count against a message.
Memory stays bounded: each message is described as it arrives and only its
delivery tag is kept, never its body (one body at a time is in memory).

Replaying: a selected message is published — confirmed — to the queue it came
from (through the reroute exchange), and only then acked in the dead queue; a
crash in between leaves one copy in each, never none. The copy is published under
the central broker user and carries the identity the message had on arrival,
nothing else of its headers (``consumer.broker.retries.replay_headers``), so the
identity check applies to it as it did the first time.

What the sender chose is never trusted here: the id ``dead list`` shows and
``--id`` matches is the event id, or for a body that is no event the SHA-256 of
the body (hex, so no terminal escapes), never the message id property. Our own
headers (reason, origin, time) count only on copies under our own user; for any
other message the broker's newest ``x-death`` entry names the queue and reason
(its queue and reason are the broker's; its time may be the sender's, so it is not
shown), and the
origin a replay goes to is one of the two work queues, whatever a header says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery
from consumer.broker.retries import dead_id, replay_headers
from schemas import topology, wire
from schemas.errors import DecodeError
from schemas.records import Heartbeat

MIN_ID_PREFIX = 6
ID_LENGTH = 32
_ID = re.compile(rf"[0-9a-f]{{{MIN_ID_PREFIX},{ID_LENGTH}}}")
_ORIGINS = (topology.ALERTS_QUEUE, topology.DIGEST_QUEUE)
_SHOWN = 200  # characters of a reason kept for the listing
LIMIT = 10_000  # messages one `dead list` or `dead replay` holds at a time


@dataclass(frozen=True)
class DeadMessage:
    id: str  # the event id (hex), else the body's SHA-256 (hex, first 32)
    host: str
    user: str
    reason: str
    dead_at: datetime | None
    origin: str


def is_id(text: str) -> bool:
    """``text`` can be (a prefix of) an id ``dead list`` shows."""
    return _ID.fullmatch(text.lower()) is not None


def _text(value: object, limit: int = _SHOWN) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return ("" if value is None else str(value))[:limit]


def _last_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]  # RabbitMQ puts the most recent first
    return {}


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int) and 0 <= value < 2**34:
        return datetime.fromtimestamp(value, UTC)
    return None


def describe(delivery: Delivery, own_user: str | None) -> DeadMessage:
    """What ``dead list`` shows of one message; never raises (the body may be poison,
    and every header of a message not under ``own_user`` is the sender's)."""
    try:
        return _describe(delivery, own_user)
    except Exception as exc:
        return DeadMessage(dead_id(delivery.body), "?", "?",
                           f"cannot read this message: {type(exc).__name__}", None,
                           topology.ALERTS_QUEUE)  # fmt: skip


def _describe(delivery: Delivery, own_user: str | None) -> DeadMessage:
    ours = own_user is not None and delivery.user_id == own_user
    mine = delivery.headers if ours else {}
    death = _last_death(delivery.headers)
    try:
        found = wire.decode(delivery.body)
        event_id, host = found.id_hex, found.host
        user = "" if isinstance(found, Heartbeat) else found.user
    except DecodeError:
        event_id, host, user = dead_id(delivery.body), "?", "?"
    reason = _text(mine.get(topology.HEADER_REASON))
    if death and not mine.get(topology.HEADER_DEAD_AT):
        # The broker dead-lettered it (delivery limit): our reason, if any, was a park's.
        broker = f"broker: {_text(death.get('reason'), 40)} in {_text(death.get('queue'), 60)}"
        reason = f"{broker}; last parked: {reason}" if reason else broker
    origin = _text(mine.get(topology.HEADER_ORIGIN)) or _text(death.get("queue"))
    return DeadMessage(
        id=event_id,
        host=host,
        user=user,
        reason=reason or "unknown",
        # The broker keeps the rest of an x-death entry a sender wrote, its time included:
        # only on our copies (we never copy an x-death) is the newest entry all the broker's.
        dead_at=_when(mine.get(topology.HEADER_DEAD_AT))
        or _when(death.get("time") if ours else None),
        origin=origin if origin in _ORIGINS else topology.ALERTS_QUEUE,
    )


class _Held:
    """The dead messages one at a time (up to ``limit``), each held unacked until
    ``close``, which requeues every one not acked meanwhile. Only its tag is kept."""

    def __init__(self, broker: Broker, limit: int) -> None:
        self.broker = broker
        self.limit = limit
        self._handles: dict[int, Delivery] = {}

    def __iter__(self) -> Iterator[Delivery]:
        count = 0
        while count < self.limit and (delivery := self.broker.get(topology.DEAD_QUEUE)):
            count += 1
            self._handles[delivery.tag] = replace(delivery, body=b"", headers={})
            yield delivery

    def ack(self, delivery: Delivery) -> None:
        self.broker.ack(delivery)
        del self._handles[delivery.tag]

    def close(self) -> None:
        if self.broker.is_open:
            for handle in self._handles.values():
                self.broker.requeue(handle)


@contextmanager
def _held(broker: Broker, limit: int) -> Iterator[_Held]:
    held = _Held(broker, limit)
    try:
        yield held
    finally:
        held.close()


def list_dead(broker: Broker, limit: int = LIMIT) -> list[DeadMessage]:
    """The dead queue's messages, oldest first; the queue is left as it was.

    Raises:
        BrokerError, QueueMissing.
    """
    with _held(broker, limit) as deliveries:
        return [describe(delivery, broker.user) for delivery in deliveries]


def selector(ids: Collection[str]) -> Callable[[DeadMessage], bool]:
    """Matches a message whose id equals, or starts with, one of ``ids``."""
    wanted = tuple(i.lower() for i in ids if is_id(i))
    return lambda message: any(message.id.startswith(i) for i in wanted)


def replay(
    broker: Broker, select: Callable[[DeadMessage], bool], limit: int = LIMIT
) -> list[DeadMessage]:
    """Move the selected dead messages back to their origin queues; returns them.

    Raises:
        PublishRefused: the origin queue is gone (the message stays dead).
        BrokerError, QueueMissing.
    """
    replayed: list[DeadMessage] = []
    with _held(broker, limit) as deliveries:
        for delivery in deliveries:
            message = describe(delivery, broker.user)
            if not select(message):
                continue
            headers = replay_headers(delivery, broker.user)
            broker.publish(topology.REROUTE_EXCHANGE, message.origin, delivery.body,
                           headers=headers, message_id=delivery.message_id,
                           timestamp=delivery.timestamp)  # fmt: skip
            deliveries.ack(delivery)
            replayed.append(message)
    return replayed
