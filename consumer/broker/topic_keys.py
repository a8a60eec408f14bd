"""Which routing keys each broker user may publish with: RabbitMQ topic permissions.

A host user may write to the events exchange (``HOST_PERMISSIONS``); its topic permission
on that exchange limits the routing keys to ``<its own name>.<message type>``
(``topology.topic_write_pattern``), and RabbitMQ refuses any other key with
``ACCESS_REFUSED``. The key is then the broker's word for who spoke, and the lanes
exchange hashes it: a host cannot pick another host's lane, nor spread over all of them.

The pattern names the user literally, escaped. RabbitMQ's ``{username}`` variable is put
into the pattern raw, so the dots of ``host-web1.example.org`` would match any character:
that user could write ``host-web1Xexample.org.event``, and hash into any lane it likes.

Hooks from before lanes publish with their event's kind alone (``login``). A host user
that ``loginwatch setup`` finds without a topic permission (made before this release) gets
the pattern that also admits such one-word keys, which reach only the shared alerts queue
(``old_hooks``); ``loginwatch host strict NAME`` takes that away once the host's hook is
upgraded. ``loginwatch host add`` makes new users strict from the start.

Users without any topic permission may publish any key (RabbitMQ's default): the central
user, which is trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from consumer.broker import rabbitmqctl
from schemas import topology


class Keys(Enum):
    """What a user's topic permission on the events exchange lets it publish."""

    OWN = "own keys only"
    OLD_HOOKS = "own keys and old hooks' one-word keys"
    ANY = "any key (no topic permission: run loginwatch setup)"
    OTHER = "a topic permission loginwatch did not write"


@dataclass(frozen=True)
class Applied:
    """What ``upgrade`` did: users given the transitional pattern, users already set."""

    old_hooks: tuple[str, ...]
    unchanged: tuple[str, ...]


def write_patterns(vhost: str) -> dict[str, str]:
    """Each user's write pattern on the events exchange of ``vhost``.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    rows = rabbitmqctl.run_json("list_topic_permissions", "-p", vhost)
    return {
        str(row.get("user")): str(row.get("write"))
        for row in rows
        if row.get("exchange") == topology.EXCHANGE
    }


def keys_of(user: str, patterns: dict[str, str]) -> Keys:
    """What ``user`` may publish, given ``write_patterns``."""
    pattern = patterns.get(user)
    if pattern is None:
        return Keys.ANY
    if pattern == topology.topic_write_pattern(user):
        return Keys.OWN
    if pattern == topology.topic_write_pattern(user, old_hooks=True):
        return Keys.OLD_HOOKS
    return Keys.OTHER


def row(vhost: str, user: str, *, old_hooks: bool = False) -> dict[str, object]:
    """``user``'s topic permission on the events exchange (``topic_write_pattern``; it
    reads nothing through topics) as a definitions row (``rabbitmqctl import_definitions``:
    ``restrict_all``, and ``host add`` with the user itself)."""
    return {"user": user, "vhost": vhost, "exchange": topology.EXCHANGE, "read": "^$",
            "write": topology.topic_write_pattern(user, old_hooks=old_hooks)}  # fmt: skip


def restrict_all(vhost: str, users: Iterable[str], *, old_hooks: bool = False) -> None:
    """Give each of ``users`` its topic permission (``row``), in one ``rabbitmqctl
    import_definitions`` (a fleet of hosts is one call, not one per host).

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    rows = [row(vhost, user, old_hooks=old_hooks) for user in users]
    if rows:
        rabbitmqctl.run("import_definitions", stdin=json.dumps({"topic_permissions": rows}))


def speakers(permissions: Iterable[Mapping[str, object]], relays: Iterable[str] = ()) -> list[str]:
    """Of the users with ``permissions`` on a vhost (``rabbitmqctl list_permissions`` rows),
    the host users (``host-*``) and those of ``relays`` (``[worker.host_users]``): the users
    whose routing keys should be limited."""
    users = [str(row.get("user")) for row in permissions]
    wanted = set(relays)
    return [u for u in users if topology.user_host(u) is not None or u in wanted]


def upgrade(vhost: str, users: list[str]) -> Applied:
    """Give each of ``users`` without a topic permission the transitional pattern (its own
    keys and old hooks' one-word keys); leave every other as it is. Idempotent.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    if not users:
        return Applied((), ())
    patterns = write_patterns(vhost)
    opened = tuple(user for user in users if user not in patterns)
    restrict_all(vhost, opened, old_hooks=True)
    return Applied(opened, tuple(user for user in users if user in patterns))
