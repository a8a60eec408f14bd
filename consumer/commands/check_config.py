"""``loginwatch check-config``: load the config, check secrets, optionally the broker."""

from __future__ import annotations

import argparse
import os
import pwd
from urllib.parse import urlsplit, urlunsplit

from consumer.cli import add_config_argument
from consumer.commands._common import config_of, open_broker
from schemas import topology
from schemas.config import Config, config_path, load_config, read_secret
from schemas.errors import ConfigError, LoginwatchError

# The user the central units run as (deploy/systemd: User=loginwatch).
SERVICE_USER = "loginwatch"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate the config file and its secret files; --broker also connects",
        description=(
            "Load and validate the config, check that every secret file exists and is"
            " readable by its owner only, and print a summary. Run as root, it also checks"
            " that the service user (--as-user) can read the config and every secret file,"
            " as that user. With --broker, also connect to RabbitMQ and check that the"
            " queues exist. Exits 1 on the first problem, naming the key."
        ),
    )
    add_config_argument(parser)
    parser.add_argument(
        "--as-user",
        metavar="USER",
        help=f"who must be able to read the config and its secrets (default, as root:"
        f" {SERVICE_USER}, the user the units run as; a host's config is read by root)",
    )
    parser.add_argument(
        "--broker", action="store_true", help="also connect to the broker and check the queues"
    )
    parser.set_defaults(run=run)


def _secret_files(config: Config) -> list[tuple[str, str]]:
    """(key, path) of every secret file the config names."""
    named = (
        ("$.broker.password_file", config.broker.password_file),
        ("$.smtp.password_file", config.smtp.password_file),
        ("$.store.password_file", config.store.password_file),
    )
    return [(key, path) for key, path in named if path is not None]


def _secrets(config: Config) -> list[str]:
    """Read every secret file as the caller; their paths.

    Raises:
        ConfigError: one is missing, unreadable or too open, naming its key.
    """
    for key, path in _secret_files(config):
        read_secret(path, key)
    return [path for _, path in _secret_files(config)]


def _reader(name: str | None) -> pwd.struct_passwd | None:
    """The user to check as, or None: the caller is the reader (or no service user here).

    Raises:
        ConfigError: ``--as-user`` names no user.
    """
    if name is not None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(f"--as-user {name}: no such user") from None
        if os.geteuid() not in (0, entry.pw_uid):
            raise ConfigError(f"--as-user {name}: only root can check as another user")
    elif os.geteuid() != 0:
        return None
    else:
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return None
    return None if entry.pw_uid == os.geteuid() else entry


def _check_as(user: pwd.struct_passwd, path: str) -> None:
    """Read the config at ``path`` and its secrets as ``user``, in a child that becomes it.

    Only root can become another user; a failure comes back as one line.

    Raises:
        ConfigError: ``user`` cannot read one of them (naming the key and the user).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_end)
            os.initgroups(user.pw_name, user.pw_gid)
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            _secrets(load_config(path))
            status = 0
        except (LoginwatchError, OSError) as exc:
            os.write(write_end, str(exc).encode()[:4000])
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ConfigError(
            f"as {user.pw_name}, who must read it: {message or 'the check failed'}"
            f" (chown {user.pw_name} the secret files; the config needs group {user.pw_name},"
            " mode 0640)"
        )


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    reader = _reader(args.as_user)
    if reader is None:
        secrets = _secrets(config)
    else:
        # Only as the reader: root reads anything, so a check as root proves nothing.
        _check_as(reader, config_path(args.config))
        secrets = [path for _, path in _secret_files(config)]
    routes = ", ".join(f"{r.mode}→{len(r.to)} recipient(s)" for r in config.route) or "none"
    print(f"config {config_path(args.config)}: ok")
    print(f"  broker  {', '.join(_no_password(url) for url in config.broker.nodes)}")
    print(f"  smtp    {config.smtp.host}:{config.smtp.port} from {config.smtp.from_}")
    print(f"  routes  {routes}")
    print(f"  store   {_no_password(config.store.url)}")
    print(f"  worker  retry delays {list(config.worker.retry_delays)} s,"
          f" require_user_id={config.worker.require_user_id}")  # fmt: skip
    print(f"  secrets {', '.join(secrets) or 'none'} (mode ok)")
    if reader is not None:
        print(f"  reader  {reader.pw_name} can read the config and every secret file")
    if reader is None and os.geteuid() == 0 and args.as_user is None:
        print(f"  note    no user {SERVICE_USER} here: checked as root (--as-user USER)")
    if args.broker:
        with open_broker(config) as broker:
            for spec in topology.queue_specs(config.worker.retry_delays):
                broker.queue_state(spec.name)  # raises QueueMissing with the fix
        print("  broker  connected; every queue exists")
    return 0


def _no_password(url: str) -> str:
    """``amqp://user:secret@host/`` → ``amqp://user:***@host/`` (and libpq's ``?password=``
    → ``?password=***``): summaries end up in tickets."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    query = "&".join(
        "password=***" if pair.partition("=")[0] == "password" else pair
        for pair in parts.query.split("&")
    )
    return urlunsplit(parts._replace(query=query))
