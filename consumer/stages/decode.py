"""Stage 1, decode: a message body off the wire → a validated ``LoginEvent``.

Anything else — a body over ``schemas.event.MAX_BODY`` (refused on its length,
before it is parsed), bytes that are not msgpack, a truncated body, wrong types,
a field past its bound, nesting too deep — or an event whose broker user may
not speak for the host it names (``consumer/core/identity.py``) raises
``DecodeError`` with the reason the dead queue keeps. Nothing a body holds can
raise anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.core.identity import Identity
from schemas import wire
from schemas.errors import DecodeError
from schemas.event import LoginEvent
from schemas.records import Heartbeat
from schemas.wire import Message


@dataclass(frozen=True)
class Incoming:
    """What decode needs of one delivery: the body and the broker user behind it
    (``effective_user``: the identity the message had on arrival). ``quiet``: its speaker
    floods, so the decisions that mail nobody are counted, not logged one by one (the
    worker's rate-limited line says how many)."""

    body: bytes
    user_id: str | None = None
    arrived: float | None = None  # epoch s on this machine's clock (Delivery.arrived)
    quiet: bool = False


class Decoder:
    """``Decoder(identity)(incoming) -> LoginEvent``."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def __call__(self, incoming: Incoming, /) -> LoginEvent:
        """Decode and check one body.

        Raises:
            DecodeError: oversized, undecodable, invalid, or from a user that may not
                speak for its host.
        """
        try:
            event = wire.decode_event(incoming.body)
        except DecodeError as exc:
            raise DecodeError(f"undecodable event: {exc.reason}", incoming.body) from None
        return self.identity.checked(event, incoming.user_id, incoming.body)

    def message(self, incoming: Incoming, /) -> Message:
        """Decode and check one body of any type the hosts send: an event, a heartbeat
        or a logout (``schemas.wire``); the caller checks the type it got.

        Raises:
            DecodeError: as ``__call__``.
        """
        try:
            found = wire.decode(incoming.body)
        except DecodeError as exc:
            raise DecodeError(f"undecodable event: {exc.reason}", incoming.body) from None
        if isinstance(found, LoginEvent):
            return self.identity.checked(found, incoming.user_id, incoming.body)
        if isinstance(found, Heartbeat):
            return self.identity.checked(found, incoming.user_id, incoming.body)
        return self.identity.checked(found, incoming.user_id, incoming.body)
