"""Retries and dead-lettering: where a delivery goes when it is not done, and what it carries.

A delivery that failed for now is *parked*: republished — confirmed — to the retry queue of
its attempt (``[worker] retry_delays``), whose TTL sends it back to the alerts queue. After
the last attempt, or when it can never succeed, it goes to the dead queue with the reason,
its origin (where ``dead replay`` sends it back) and the time. The caller acks the original
only once the copy is confirmed.

Every copy we publish is under our own broker user and carries the identity the message had
on arrival, nothing else of its headers (``republish_headers``): a host's headers would read
as ours on a copy under our user.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from consumer.broker.connection import Broker
from consumer.broker.delivery import Delivery
from consumer.core.identity import effective_user
from schemas import topology, wire
from schemas.errors import DecodeError, PublishRefused
from schemas.event import MAX_BODY

# Each queue's consumer logs its own moves, under its own name.
_LOGS = {
    topology.ALERTS_QUEUE: logging.getLogger("loginwatch.worker"),
    topology.DIGEST_QUEUE: logging.getLogger("loginwatch.digest"),
}
# What a replayed copy leaves behind: it is no longer dead, and its attempts start again.
_DROPPED_ON_REPLAY = (topology.HEADER_REASON, topology.HEADER_DEAD_AT, topology.HEADER_ATTEMPT)


def dead_id(body: bytes) -> str:
    """The id a message goes by in the dead queue and its log lines: the event id (hex)
    when the body decodes, else the first 32 hex digits of its SHA-256. Never an id its
    sender chose freely (a message id), never text with a terminal escape."""
    try:
        return wire.decode(body).id_hex
    except DecodeError:
        return hashlib.sha256(body).hexdigest()[:32]


class Requeued(Exception):
    """The broker refused the move: the delivery was given back to its queue, not settled."""


def republish_headers(delivery: Delivery, own_user: str | None, **extra: Any) -> dict[str, Any]:
    """The headers of a copy we republish under ``own_user``: the identity the message
    had on arrival (``HEADER_USER_ID``, "" for none), our own headers when it is one of
    our copies, then ``extra``.

    Nothing else of the original travels: a host's headers (a forged identity, attempt
    count, origin or reason) and the broker's ``x-death`` would read as ours on a copy
    under our user.
    """
    ours = own_user is not None and delivery.user_id == own_user
    headers = {k: delivery.headers[k] for k in topology.CENTRAL_HEADERS
               if ours and k in delivery.headers}  # fmt: skip
    headers[topology.HEADER_USER_ID] = (
        effective_user(delivery.user_id, delivery.headers, own_user) or ""
    )
    headers.update(extra)
    return headers


def replay_headers(delivery: Delivery, own_user: str | None) -> dict[str, Any]:
    """The headers of a dead message's copy on its way back to its origin queue."""
    headers = republish_headers(delivery, own_user)
    for name in _DROPPED_ON_REPLAY:
        headers.pop(name, None)
    return headers


def dead_letter(
    broker: Broker, delivery: Delivery, reason: str, event_id: str, *, origin: str
) -> None:
    """Move ``delivery`` to the dead queue (confirmed) with ``reason``; ``origin`` is the
    queue it came from, where ``dead replay`` brings it back.

    Raises:
        PublishRefused: the dead queue refused it (it stays unacked).
        BrokerError: the connection failed.
    """
    headers = republish_headers(
        delivery,
        broker.user,
        **{
            topology.HEADER_REASON: reason[:500],
            topology.HEADER_ORIGIN: origin,
            topology.HEADER_DEAD_AT: int(time.time()),
        },
    )
    body = delivery.body
    if len(body) > MAX_BODY:
        # No event is this long. Kept whole, one host's blobs would fill the dead queue
        # (it has no limit) until the broker's memory alarm blocks every publisher: keep
        # the first MAX_BODY bytes, and the length and digest of what arrived.
        headers[topology.HEADER_BODY_SIZE] = len(body)
        headers[topology.HEADER_BODY_SHA256] = hashlib.sha256(body).hexdigest()
        body = body[:MAX_BODY]
    _publish(broker, delivery, topology.DEAD_QUEUE, headers, body)
    shown = event_id if event_id != "-" else dead_id(body)
    _LOGS[origin].error("%s dead-lettered: %s", shown, reason)


class Retries:
    """The alerts queue's retry policy: park in the retry queues, dead after the last one.

    A move the broker refuses (a retry or dead queue missing) gives the delivery back
    unacked and raises ``Requeued``: it comes back, and the queue's delivery limit ends
    the loop.
    """

    def __init__(self, delays: Sequence[int], own_user: str | None) -> None:
        self.delays = tuple(delays)
        self.own_user = own_user
        self.log = _LOGS[topology.ALERTS_QUEUE]

    def park(self, broker: Broker, delivery: Delivery, reason: str, event_id: str) -> None:
        """Republish to the next retry queue, or to the dead queue after the last.

        Raises:
            Requeued: the broker refused the copy.
            BrokerError: the connection failed.
        """
        # Only our own republished copies count: a host cannot cut its retries short.
        ours = delivery.user_id == self.own_user
        attempt = _int(delivery.headers.get(topology.HEADER_ATTEMPT)) if ours else 0
        if attempt >= len(self.delays):
            self.dead(broker, delivery, f"gave up after {attempt} parked attempt(s): {reason}",
                      event_id)  # fmt: skip
            return
        target = topology.retry_queue(self.delays[attempt])
        headers = republish_headers(
            delivery,
            broker.user,
            **{
                topology.HEADER_ATTEMPT: attempt + 1,
                topology.HEADER_ORIGIN: topology.ALERTS_QUEUE,
                topology.HEADER_REASON: reason[:500],
            },
        )
        self._move(broker, delivery, target, lambda: _publish(broker, delivery, target, headers))
        self.log.warning("%s parked in %s (attempt %d of %d): %s", event_id, target,
                         attempt + 1, len(self.delays), reason)  # fmt: skip

    def dead(self, broker: Broker, delivery: Delivery, reason: str, event_id: str) -> None:
        """Republish to the dead queue, origin the alerts queue.

        Raises:
            Requeued: the broker refused the copy.
            BrokerError: the connection failed.
        """
        self._move(broker, delivery, topology.DEAD_QUEUE,
                   lambda: dead_letter(broker, delivery, reason, event_id,
                                       origin=topology.ALERTS_QUEUE))  # fmt: skip

    def _move(
        self, broker: Broker, delivery: Delivery, queue_name: str, publish: Callable[[], None]
    ) -> None:
        try:
            publish()
        except PublishRefused as exc:
            # Not acked: it comes back, and the queue's delivery limit ends the loop.
            self.log.error("cannot move a message to %s: %s (is setup current?)", queue_name,
                           exc)  # fmt: skip
            broker.requeue(delivery)
            raise Requeued from None


def _publish(
    broker: Broker,
    delivery: Delivery,
    queue_name: str,
    headers: dict[str, Any],
    body: bytes | None = None,
) -> None:
    broker.publish(topology.REROUTE_EXCHANGE, queue_name,
                   delivery.body if body is None else body,
                   headers=headers, message_id=delivery.message_id,
                   timestamp=delivery.timestamp)  # fmt: skip


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
