"""``loginwatch broker-user add``: the central side's own broker user, from its config.

The user and vhost are the ones the config's ``[broker] url`` names, and the
password goes to its ``password_file``, so the three can never disagree. Like
``host add``: a random password, written to a 0600 file owned by the service
user before a byte is in it, and handed to ``rabbitmqctl add_user`` on stdin.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
from pathlib import Path

from consumer.broker import host_users, rabbitmqctl
from consumer.commands._common import add_config_argument, config_of
from schemas.config import BrokerConfig
from schemas.errors import ConfigError
from schemas.nodes import broker_user, broker_vhost
from schemas.topology import user_host

SERVICE_USER = "loginwatch"
# A plain name: it goes into rabbitmqctl's argv, where "-p" would be an option.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
# The central side declares the topology, consumes every queue and republishes
# parked alerts, on its vhost only.
CENTRAL_PERMISSIONS = (".*", ".*", ".*")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "broker-user",
        help="create the central side's broker user from the config (on the broker machine)",
        description=(
            "Create the broker user the config's [broker] url (or urls) names, on the vhost it"
            " names, with a random password written to [broker] password_file (mode 0600, owned by"
            " the service user) and given to rabbitmqctl on stdin. Runs rabbitmqctl, so run"
            " it as root on a broker machine (of a cluster: on any node, the cluster shares users)."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="create the user, its password file and its permissions on the vhost"
    )
    add_config_argument(add)
    add.add_argument(
        "--owner",
        default=SERVICE_USER,
        help=f"who owns the password file: the user the units run as (default {SERVICE_USER})",
    )
    add.set_defaults(run=run_add)


def _owner(name: str) -> tuple[int, int] | None:
    """(uid, gid) to give the password file; None when it is the caller's anyway.

    Raises:
        ConfigError: no such user, or one that only root may give a file to.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"--owner {name}: no such user (install-central.sh creates {SERVICE_USER})"
        ) from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise ConfigError(f"--owner {name}: only root can give the password file to another user")
    return entry.pw_uid, entry.pw_gid


def run_add(args: argparse.Namespace) -> int:
    config = config_of(args)
    user = broker_user(config.broker)
    key = _url_key(config.broker)
    if not USER_NAME.fullmatch(user):
        raise ConfigError(
            f"{key}: the user {user!r} is not a plain name (letters, digits, . _ @ -)"
        )
    if user == "guest" or user_host(user) is not None:
        raise ConfigError(
            f"{key}: names the user {user!r}; the central side needs one of its own,"
            f" e.g. amqp://{SERVICE_USER}@127.0.0.1:5672/%2F"
        )
    if config.broker.password_file is None:
        raise ConfigError(
            '$.broker.password_file: not set; add password_file = "/etc/loginwatch/broker.password"'
        )
    password_file = Path(config.broker.password_file)
    owner = _owner(args.owner)
    vhost = broker_vhost(config.broker)
    _check_broker(user, vhost, key)
    host_users.create_user(user, vhost, CENTRAL_PERMISSIONS, password_file, owner=owner)
    print(f"created broker user {user} with all permissions on vhost {vhost!r};")
    print(f"its password is in {password_file} (mode 0600, owner {args.owner})")
    return 0


def _url_key(broker: BrokerConfig) -> str:
    """The key that names the user and vhost: ``$.broker.url``, or ``$.broker.urls`` (the
    same on every node)."""
    return "$.broker.urls" if broker.urls is not None else "$.broker.url"


def _check_broker(user: str, vhost: str, key: str) -> None:
    """Refuse before anything is made: a missing vhost, a user that exists.

    Raises:
        ConfigError: the vhost is missing or the user exists.
        BrokerError: rabbitmqctl failed.
    """
    if not any(row.get("name") == vhost for row in rabbitmqctl.run_json("list_vhosts")):
        raise ConfigError(
            f"{key}: vhost {vhost!r} does not exist on this broker"
            f" (rabbitmqctl add_vhost {vhost}, or fix the URL's path)"
        )
    if any(row.get("user") == user for row in rabbitmqctl.run_json("list_users")):
        raise ConfigError(
            f"{key}: the broker user {user} exists already; its password stays as it is"
            f" (rabbitmqctl delete_user {user} first to make it anew)"
        )
