"""Which broker user may speak for which host: the one rule the worker and the digest share.

With the default config:

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
of the host's (``consumer.broker.retries.republish_headers``). So ``effective_user``
believes that header only on a message whose ``user_id`` is the central user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, TypeVar

import msgspec

from consumer.core.display import quoted
from schemas import event as wire
from schemas.config import Config
from schemas.errors import DecodeError
from schemas.event import LoginEvent
from schemas.nodes import broker_user
from schemas.records import Heartbeat, Logout
from schemas.topology import HEADER_ORIGIN, HEADER_USER_ID, HOST_NAME_PATTERN, user_host

# What a host reports, each under its host's name: an event, a heartbeat, a logout.
_Reported = TypeVar("_Reported", LoginEvent, Heartbeat, Logout)


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

    def checked(self, event: _Reported, user: str | None, body: bytes) -> _Reported:
        """``event`` (or a heartbeat, a logout) as ``user`` may report it (its host under
        the accepted name).

        Raises:
            DecodeError: no ``user``, or one that may not speak for the event's host
                (``body`` is kept for the dead queue).
        """
        if not user:
            raise DecodeError("no user_id: host events must carry their broker user", body)
        name = self.speaks_as(user, event.host)
        if name is None:
            who, host = quoted(user, 80), quoted(event.host, 80)
            raise DecodeError(f"user_id {who} may not speak for host {host}", body)
        return event if name == event.host else msgspec.structs.replace(event, host=name)

    def votes(self, user: str | None, host: str) -> bool:
        """Whether ``user``'s report for ``host`` (already accepted) is a first-seen vote for
        the other hosts: not when a relay (``host_users``) speaks for a host other than its
        own name, since one relay may speak for many names (``Store.observe``). The worker's
        pipeline and the digest intake both ask this, so the two never disagree."""
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
