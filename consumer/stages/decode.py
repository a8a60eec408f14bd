"""Stage 1, decode: a message body off the wire → a validated ``LoginEvent``.

Anything else — bytes that are not msgpack, a truncated body, wrong types,
a field past its bound, or (with ``[worker] require_user_id``) an event whose
broker user may not speak for the host it names — raises ``DecodeError`` with
the reason the dead queue keeps.

Host identity: ``loginwatch host add NAME`` creates the broker user
``host-NAME``, and the hook sets the ``user_id`` property, which RabbitMQ checks
against the connection's user. So an event naming host ``web1`` must arrive with
``user_id`` ``host-web1``, or with a user that ``[worker.host_users]`` lists for
``web1`` (globs, e.g. a relay). Host names compare case-insensitively.

When the worker republishes an event (parked for a retry, replayed from the
dead queue) it publishes under its own broker user and carries the host's user
in ``HEADER_USER_ID``; that header is believed only on messages whose
``user_id`` is the central side's own user, which no host can forge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from schemas import event as wire
from schemas.config import Config, broker_user
from schemas.errors import DecodeError
from schemas.event import LoginEvent
from schemas.topology import HEADER_USER_ID, host_user


@dataclass(frozen=True)
class Incoming:
    """What decode needs of one delivery: the body and the broker user behind it."""

    body: bytes
    user_id: str | None = None


@dataclass(frozen=True)
class Identity:
    """Which broker users may speak for which hosts (``[worker]``)."""

    require_user_id: bool = False
    own_user: str = "guest"
    host_users: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Identity:
        return cls(
            require_user_id=config.worker.require_user_id,
            own_user=broker_user(config.broker),
            host_users=config.worker.host_users,
        )

    def may_speak_for(self, user: str, host: str) -> bool:
        host = host.lower()
        if user.lower() == host_user(host):
            return True
        return any(fnmatchcase(host, glob.lower()) for glob in self.host_users.get(user, ()))


def effective_user(
    user_id: str | None, headers: Mapping[str, Any], own_user: str | None
) -> str | None:
    """The host's broker user behind a message (see the module docstring)."""
    if own_user is None or user_id != own_user:
        return user_id
    carried = headers.get(HEADER_USER_ID)
    if isinstance(carried, bytes):
        carried = carried.decode("utf-8", "replace")
    return carried if isinstance(carried, str) and carried else user_id


def short(text: str, limit: int = 80) -> str:
    """A hostile string made safe for a log line or a header: repr, bounded."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class Decoder:
    """``Decoder(identity)(incoming) -> LoginEvent``."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    def __call__(self, incoming: Incoming, /) -> LoginEvent:
        """Decode and check one body.

        Raises:
            DecodeError: undecodable, invalid, or from a user that may not speak for its host.
        """
        try:
            event = wire.decode(incoming.body)
        except DecodeError as exc:
            raise DecodeError(f"undecodable event: {exc.reason}", incoming.body) from None
        if not self.identity.require_user_id:
            return event
        if not incoming.user_id:
            raise DecodeError("no user_id: host events must carry their broker user", incoming.body)
        if not self.identity.may_speak_for(incoming.user_id, event.host):
            raise DecodeError(
                f"user_id {short(incoming.user_id)} may not speak for host {short(event.host)}",
                incoming.body,
            )
        return event
