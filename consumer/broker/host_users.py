"""Host identity: one write-only broker user per SSH host.

``host-NAME`` (``schemas.topology.host_user``) may publish to the events
exchange and do nothing else (``HOST_PERMISSIONS``): no queue to read, nothing
to declare, and only with routing keys that begin with its own name
(``topic_keys``: the key chooses the alert lane). The hook publishes with
``user_id`` = that user, which RabbitMQ checks against the connection's user,
and the worker accepts an event naming host NAME only from ``host-NAME``: a
host can report its own logins, never another host's.

Each host user also has limits on what it may hold open at the broker (``HOST_LIMITS``,
``rabbitmqctl set_user_limits``): without them one compromised host could open connections
and channels (~20 KB of broker memory each) until the node's memory alarm blocks every
publisher of the fleet. ``host add`` sets them; ``loginwatch setup`` gives them to host users
made before (``limit_all``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from consumer.broker import rabbitmqctl
from consumer.broker.topic_keys import row as topic_keys_row
from schemas import topology, transport
from schemas.errors import ConfigError, LoginwatchError
from schemas.topology import HOST_NAME_PATTERN, HOST_PERMISSIONS, host_user, user_host

# Where install-host.sh puts a host's config and password by default: not
# loginwatch.toml and broker.password, which are the central side's own, so the
# central machine can be an SSH host too.
HOST_CONFIG_FILE = "/etc/loginwatch/host.toml"
HOST_PASSWORD_FILE = "/etc/loginwatch/host.password"  # noqa: S105 - a path, not a secret


# What one host needs at once, with room to spare: the hook's publisher (one connection,
# one channel), the flush timer's (the same), a connection the broker has not yet seen die
# (a host that rebooted mid-publish: up to the 60 s heartbeat), and a cluster's next node
# while the last one's connection closes. 8 connections of 2 channels is four times that;
# a host at the limit costs the broker ~0.5 MB, not the ~5 GB that reached the memory alarm.
HOST_LIMITS: Final = {"max-connections": 8, "max-channels": 16}


class HostExists(LoginwatchError):
    """``host add`` for a host whose broker user exists already."""


@dataclass(frozen=True)
class HostEntry:
    name: str
    user: str
    write_only: bool  # permissions on the vhost are exactly HOST_PERMISSIONS
    limits: dict[str, int]  # the broker's user limits ({}: none, unbounded)

    @property
    def limited(self) -> bool:
        """Both limits are set, none above ``HOST_LIMITS`` (-1 is RabbitMQ's "no limit")."""
        return all(0 <= self.limits.get(key, -1) <= most for key, most in HOST_LIMITS.items())


def host_name(raw: str) -> str:
    """A valid host name, lower-cased (DNS names compare case-insensitively).

    Raises:
        ConfigError: not a host name (DNS labels joined by dots).
    """
    if not re.fullmatch(HOST_NAME_PATTERN, raw) or len(raw) > 253:
        raise ConfigError(f"{raw!r}: not a host name (letters, digits, '-', '.')")
    if not topology.routing_key_fits(host_user(raw)):
        raise ConfigError(f"{raw!r}: too long for a routing key (host-NAME.heartbeat must fit"
                          f" {topology.MAX_ROUTING_KEY} bytes)")  # fmt: skip
    return raw.lower()


def vhost_of(url: str) -> str:
    """The vhost an AMQP URL names (``/`` when the path is empty)."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def host_url(central_url: str, name: str) -> str:
    """The central URL with ``host-NAME`` as the user and no password."""
    parts = urlsplit(central_url)
    netloc = quote(host_user(name), safe="") + "@" + (parts.netloc.rpartition("@")[2])
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(url: str) -> bool:
    """Whether the URL's broker is this machine (the rule ``[broker] url`` itself applies)."""
    return transport.is_loopback(urlsplit(url).hostname)


def plaintext_elsewhere(url: str) -> bool:
    """A plain ``amqp://`` URL to another machine: the host's password would cross the
    network unencrypted, and the host refuses such a config unless ``allow_plaintext``."""
    return urlsplit(url).scheme == "amqp" and not is_loopback(url)


def host_config(name: str, urls: tuple[str, ...], *, allow_plaintext: bool = False) -> str:
    """The TOML a host needs (``[broker]`` and ``[host]``), for the operator to copy:
    ``url`` for one broker node, ``urls`` for a cluster's."""
    if len(urls) == 1:
        where = [f'url = "{urls[0]}"']
    else:
        where = ["urls = [", *(f'    "{url}",' for url in urls), "]"]
    lines = [
        f"# {HOST_CONFIG_FILE} on {name}",
        "[broker]",
        *where,
        f'password_file = "{HOST_PASSWORD_FILE}"',
    ]
    if allow_plaintext and any(plaintext_elsewhere(url) for url in urls):
        lines.append("allow_plaintext = true  # the password crosses the network unencrypted")
    if any(urlsplit(url).scheme == "amqps" for url in urls):
        lines += [
            'ca_file = "/etc/loginwatch/ca.pem"  # the CA that signed the broker\'s certificate',
            '# cert_file = "/etc/loginwatch/host.pem"  # when the broker requires client certs',
            '# key_file = "/etc/loginwatch/host.key"',
        ]
    lines += ["", "[host]", f'name = "{name}"']
    return "\n".join(lines) + "\n"


def add(name: str, vhost: str, password_file: Path) -> None:
    """Create ``host-NAME`` with write-only permissions, a topic permission for its own
    routing keys only (no user that may publish any key: it could pick any host's lane),
    ``HOST_LIMITS`` and a fresh random password.

    The password goes to ``password_file`` (created 0600, never overwritten); the broker
    gets only its salted hash, on rabbitmqctl's stdin.

    Raises:
        HostExists: the broker user exists already.
        ConfigError: the password file exists already.
        BrokerError: rabbitmqctl failed.
    """
    user = host_user(name)
    if any(row.get("user") == user for row in rabbitmqctl.run_json("list_users")):
        raise HostExists(f"{user} exists already (host remove {name} first to replace it)")
    create_user(
        user,
        vhost,
        (HOST_PERMISSIONS["configure"], HOST_PERMISSIONS["write"], HOST_PERMISSIONS["read"]),
        password_file,
        limits=HOST_LIMITS,
        topic_keys=True,
    )


def create_user(
    user: str,
    vhost: str,
    permissions: tuple[str, str, str],
    password_file: Path,
    *,
    owner: tuple[int, int] | None = None,
    limits: dict[str, int] | None = None,
    topic_keys: bool = False,
) -> None:
    """Make the broker user ``user`` with a fresh random password in ``password_file``
    (created 0600, owned by ``owner``, never overwritten), ``permissions`` (configure,
    write, read) on ``vhost``, ``limits`` (user limits) and, with ``topic_keys``, the
    topic permission for its own routing keys only (``topic_keys.row``).

    One ``rabbitmqctl import_definitions`` makes it all (each rabbitmqctl call starts an
    Erlang VM: half a second of CPU), with the password's salted SHA-256 as RabbitMQ
    stores it (``password_hash``). All or nothing: a failed import deletes whatever it
    made of the user (an import stops at its first error: a missing vhost comes after the
    user), and the password file.

    Raises:
        ConfigError: the password file exists already.
        BrokerError: rabbitmqctl failed.
    """
    password = secrets.token_urlsafe(32)
    write_secret(password_file, password, owner)
    configure, write, read = permissions
    configured: dict[str, object] = {"user": user, "vhost": vhost, "configure": configure,
                                     "write": write, "read": read}  # fmt: skip
    made: dict[str, object] = {"name": user, "password_hash": password_hash(password),
                               "hashing_algorithm": HASHING_ALGORITHM, "tags": [],
                               "limits": dict(limits or {})}  # fmt: skip
    document: dict[str, list[dict[str, object]]] = {"users": [made], "permissions": [configured]}
    if topic_keys:
        document["topic_permissions"] = [topic_keys_row(vhost, user)]
    try:
        rabbitmqctl.run("import_definitions", stdin=json.dumps(document))
    except LoginwatchError:
        # No half-made user: one without its permissions would only confuse `host list`.
        password_file.unlink(missing_ok=True)
        with contextlib.suppress(LoginwatchError):  # the import failed before the user
            rabbitmqctl.run("delete_user", user)
        raise


# How RabbitMQ stores a password (its default, rabbit_password_hashing_sha256): a 4-byte
# salt, then SHA-256 of the salt and the UTF-8 password, base64. A user carries its own
# algorithm, so a node configured for another one still checks these.
HASHING_ALGORITHM: Final = "rabbit_password_hashing_sha256"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """``password`` as RabbitMQ's definitions carry it (``password_hash``)."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def remove(name: str, password_file: Path) -> bool:
    """Delete ``host-NAME`` and its password file; False when the user did not exist.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    user = host_user(name)
    password_file.unlink(missing_ok=True)
    if not any(row.get("user") == user for row in rabbitmqctl.run_json("list_users")):
        return False
    rabbitmqctl.run("delete_user", user)
    return True


def vhost_permissions(vhost: str) -> list[dict[str, Any]]:
    """Every user's permissions on ``vhost``, as ``rabbitmqctl list_permissions`` rows. A
    user with permissions on the vhost exists, so this one call (each starts an Erlang VM,
    about half a second of CPU) finds the vhost's users too.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    return rabbitmqctl.run_json("list_permissions", "-p", vhost)


def entries(vhost: str, rows: list[dict[str, Any]] | None = None) -> list[HostEntry]:
    """Every ``host-*`` broker user with permissions on ``vhost``, and whether it is write-only;
    from ``rows`` when the caller read ``vhost_permissions`` already.

    Host users of other vhosts (another fleet on the same broker) are not listed.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    permissions = {
        str(row.get("user", "")): {key: row.get(key) for key in HOST_PERMISSIONS}
        for row in (vhost_permissions(vhost) if rows is None else rows)
    }
    hosts = {user: name for user in permissions if (name := user_host(user)) is not None}
    limits = user_limits() if hosts else {}
    found = [
        HostEntry(name, user, permissions[user] == HOST_PERMISSIONS, limits.get(user, {}))
        for user, name in hosts.items()
    ]
    return sorted(found, key=lambda entry: entry.name)


def user_limits() -> dict[str, dict[str, int]]:
    """Every broker user's limits (``rabbitmqctl list_user_limits --global``); a user
    without any is missing.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    found: dict[str, dict[str, int]] = {}
    for row in rabbitmqctl.run_json("list_user_limits", "--global"):
        raw = row.get("limits")
        try:
            parsed = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            found[str(row.get("user"))] = {str(k): int(v) for k, v in parsed.items()}
    return found


def limit_all(vhost: str, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Give ``HOST_LIMITS`` to every host user of ``vhost`` that has none or looser ones
    (made before ``host add`` set them); the users it changed. ``rows`` as for ``entries``.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    changed = []
    for entry in entries(vhost, rows):
        if not entry.limited:
            rabbitmqctl.run("set_user_limits", entry.user, json.dumps(HOST_LIMITS))
            changed.append(entry.user)
    return changed


def write_secret(path: Path, secret: str, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` with mode 0600, owned by ``owner`` (uid, gid), and ``secret`` in it.

    Mode and owner are in force before the first byte: nobody else can open the
    file and read the secret later through that descriptor.

    Raises:
        ConfigError: it exists already or cannot be created.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the password file: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        if owner is not None:
            os.fchown(fd, *owner)
        handle.write(secret + "\n")
