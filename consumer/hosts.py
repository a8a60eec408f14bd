"""Host identity: one write-only broker user per SSH host.

``host-NAME`` (``schemas.topology.host_user``) may publish to the events
exchange and do nothing else (``HOST_PERMISSIONS``): no queue to read, nothing
to declare. The hook publishes with ``user_id`` = that user, which RabbitMQ
checks against the connection's user, and the worker accepts an event naming
host NAME only from ``host-NAME``: a host can report its own logins, never
another host's.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from consumer import rabbitmqctl
from schemas import config
from schemas.errors import ConfigError, LoginwatchError
from schemas.topology import HOST_NAME_PATTERN, HOST_PERMISSIONS, host_user, user_host

# Where install-host.sh puts a host's config and password by default: not
# loginwatch.toml and broker.password, which are the central side's own, so the
# central machine can be an SSH host too.
HOST_CONFIG_FILE = "/etc/loginwatch/host.toml"
HOST_PASSWORD_FILE = "/etc/loginwatch/host.password"  # noqa: S105 - a path, not a secret


class HostExists(LoginwatchError):
    """``host add`` for a host whose broker user exists already."""


@dataclass(frozen=True)
class HostEntry:
    name: str
    user: str
    write_only: bool  # permissions on the vhost are exactly HOST_PERMISSIONS


def host_name(raw: str) -> str:
    """A valid host name, lower-cased (DNS names compare case-insensitively).

    Raises:
        ConfigError: not a host name (DNS labels joined by dots).
    """
    if not re.fullmatch(HOST_NAME_PATTERN, raw) or len(raw) > 253:
        raise ConfigError(f"{raw!r}: not a host name (letters, digits, '-', '.')")
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
    return config.is_loopback(urlsplit(url).hostname)


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
    """Create ``host-NAME`` with write-only permissions and a fresh random password.

    The password goes to ``password_file`` (created 0600, never overwritten)
    and to rabbitmqctl on stdin.

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
    )


def create_user(
    user: str,
    vhost: str,
    permissions: tuple[str, str, str],
    password_file: Path,
    owner: tuple[int, int] | None = None,
) -> None:
    """Make the broker user ``user`` with a fresh random password in ``password_file``
    (created 0600, owned by ``owner``, never overwritten; given to rabbitmqctl on stdin)
    and ``permissions`` (configure, write, read) on ``vhost``. All or nothing: no user
    without its permissions, no password file without its user.

    Raises:
        ConfigError: the password file exists already.
        BrokerError: rabbitmqctl failed.
    """
    password = secrets.token_urlsafe(32)
    write_secret(password_file, password, owner)
    try:
        rabbitmqctl.run("add_user", user, stdin=password + "\n")
    except LoginwatchError:
        password_file.unlink(missing_ok=True)
        raise
    try:
        rabbitmqctl.run("set_permissions", "-p", vhost, user, *permissions)
    except LoginwatchError:
        # No half-made user: one without its permissions would only confuse `host list`.
        rabbitmqctl.run("delete_user", user)
        password_file.unlink(missing_ok=True)
        raise


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


def entries(vhost: str) -> list[HostEntry]:
    """Every ``host-*`` broker user with permissions on ``vhost``, and whether it is write-only.

    Host users of other vhosts (another fleet on the same broker) are not listed.

    Raises:
        BrokerError: rabbitmqctl failed.
    """
    permissions = {
        row["user"]: {key: row.get(key) for key in HOST_PERMISSIONS}
        for row in rabbitmqctl.run_json("list_permissions", "-p", vhost)
    }
    found = []
    for row in rabbitmqctl.run_json("list_users"):
        user = str(row.get("user", ""))
        name = user_host(user)
        if name is not None and user in permissions:
            found.append(HostEntry(name, user, permissions.get(user) == HOST_PERMISSIONS))
    return sorted(found, key=lambda entry: entry.name)


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
