"""Stage 1, decode: a message body off the wire → a validated ``LoginEvent``.

Anything else — a body over ``schemas.event.MAX_BODY`` (refused on its length,
before it is parsed), bytes that are not msgpack, a truncated body, wrong types,
a field past its bound, nesting too deep — or an event whose broker user may
not speak for the host it names raises ``DecodeError`` with the reason the dead
queue keeps. Nothing a body holds can raise anything else.

Host identity, with the default config:

- ``loginwatch host add NAME`` creates the broker user ``host-NAME``, the hook
  sets the ``user_id`` property, and RabbitMQ refuses one that is not the
  connection's user. An event from ``host-NAME`` is accepted only for host NAME
  (ASCII letters, digits, dots and dashes; case-insensitive; its ``host`` is
  rewritten to NAME, so one host cannot split itself into ``Web1``/``WEB1``).
- A user that ``[worker.host_users]`` maps to host globs (a relay) may speak for
  the host names, as DNS names, those globs match.
- The central side's own broker user (the one in its config) may speak for any
  host: a single-machine install, the demo and the tests publish that way.
  ``[worker] require_user_id = true`` (strict) takes that away too, unless
  ``host_users`` maps it.
- No ``user_id`` at all: refused. The hook always sets it.

Headers: every header on a message a host published is the host's, so none is
believed. When the central side republishes a message (parked for a retry,
dead-lettered, replayed) under its own user, it writes ``HEADER_USER_ID`` itself
with the identity the message had on arrival ("" for none) and copies no header
of the host's (``consumer.retries.republish_headers``). So ``effective_user``
believes that header only on a message whose ``user_id`` is the central user.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from consumer.display import quoted
from schemas import event as wire
from schemas.config import Config, broker_user
from schemas.errors import DecodeError
from schemas.event import LoginEvent
from schemas.topology import HEADER_ORIGIN, HEADER_USER_ID, HOST_NAME_PATTERN, user_host


@dataclass(frozen=True)
class Incoming:
    """What decode needs of one delivery: the body and the broker user behind it
    (``effective_user``: the identity the message had on arrival)."""

    body: bytes
    user_id: str | None = None


def dns_name(host: str) -> str | None:
    """``host`` lower-cased when it is a plain DNS name (ASCII labels), else None.

    Only ASCII counts: ``str.lower`` folds some non-ASCII letters into ASCII ones
    (KELVIN SIGN → ``k``), and a look-alike must never become a fleet host's name.
    """
    if len(host) > wire.MAX_HOST or not re.fullmatch(HOST_NAME_PATTERN, host):
        return None
    return host.lower()


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

    def speaks_as(self, user: str | None, host: str) -> str | None:
        """The name ``user`` reports host ``host`` under, or None when it may not."""
        if not user:
            return None
        name = dns_name(host)
        own = user_host(user)
        if name is not None and own is not None and own == name:
            return name  # `host add` makes lower-case names: `host-Web1` speaks for nobody
        globs = self.host_users.get(user, ())
        if name is not None and any(fnmatchcase(name, glob.lower()) for glob in globs):
            return name
        if user == self.own_user and not self.require_user_id:
            return host
        return None

    def votes(self, user: str | None, host: str) -> bool:
        """Whether ``user``'s report for ``host`` (already accepted) is a first-seen vote for
        the other hosts: not when a relay (``host_users``) speaks for a host other than its
        own name, since one relay may speak for many names (``Store.observe``)."""
        return not user or user_host(user) == host or user not in self.host_users


def effective_user(
    user_id: str | None, headers: Mapping[str, Any], own_user: str | None
) -> str | None:
    """The broker user a message had on arrival (see the module docstring); None: none.

    ``user_id`` is the AMQP property (RabbitMQ checked it against the publisher's
    connection), ``own_user`` the central side's broker user.
    """
    if not user_id:
        return None
    if own_user is None or user_id != own_user:
        return user_id
    if HEADER_USER_ID not in headers:
        # Our own event — or a copy an older version republished without saying
        # whose it was (it wrote the origin header): that one has no identity.
        return None if HEADER_ORIGIN in headers else user_id
    carried = headers[HEADER_USER_ID]
    if isinstance(carried, bytes):
        carried = carried.decode("utf-8", "replace")
    return carried if isinstance(carried, str) and carried else None


def dead_id(body: bytes) -> str:
    """The id a message goes by in the dead queue and its log lines: the event id (hex)
    when the body decodes, else the first 32 hex digits of its SHA-256. Never an id its
    sender chose freely (a message id), never text with a terminal escape."""
    try:
        return wire.decode(body).id_hex
    except DecodeError:
        return hashlib.sha256(body).hexdigest()[:32]


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
            event = wire.decode(incoming.body)
        except DecodeError as exc:
            raise DecodeError(f"undecodable event: {exc.reason}", incoming.body) from None
        if not incoming.user_id:
            raise DecodeError("no user_id: host events must carry their broker user", incoming.body)
        name = self.identity.speaks_as(incoming.user_id, event.host)
        if name is None:
            who, host = quoted(incoming.user_id, 80), quoted(event.host, 80)
            raise DecodeError(f"user_id {who} may not speak for host {host}", incoming.body)
        return event if name == event.host else msgspec.structs.replace(event, host=name)
