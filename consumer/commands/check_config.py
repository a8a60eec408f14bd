"""``loginwatch check-config``: load the config, check secrets and receivers, optionally the
broker."""

from __future__ import annotations

import argparse
import os
import pwd
from urllib.parse import urlsplit, urlunsplit

from consumer.broker import host_users
from consumer.channels.outlets import describe
from consumer.commands._common import add_config_argument, config_of, open_broker
from consumer.core.display import visible
from schemas import topology, transport
from schemas.config import Config, config_path, is_postgres, load_config
from schemas.errors import BrokerError, ConfigError, LoginwatchError
from schemas.files import SERVICE_USER, read_secret
from schemas.nodes import broker_vhost
from schemas.receivers import reference, secret_files

AMQP_PORTS = {"amqps": 5671, "amqp": 5672}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate the config file and its secret files; --broker also connects",
        description=(
            "Load and validate the config, check that every secret file exists and is"
            " readable by its owner only, check every [receiver.NAME] (its secret files, the"
            " shape of its URL, TLS or loopback), and print a summary that shows no secret."
            " Run as root, it also checks"
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
    named = [
        ("$.broker.password_file", config.broker.password_file),
        ("$.smtp.password_file", config.smtp.password_file),
        ("$.store.password_file", config.store.password_file),
    ]
    if config.web.base_url is not None:  # the links' keys, loginwatch web's passwords
        named += [("$.web.secret_file", config.web.secret_file),
                  ("$.web.password_file", config.web.password_file),
                  ("$.web.proxy_secret_file", config.web.proxy_secret_file)]  # fmt: skip
    receivers = [pair for name, r in config.receiver.items() for pair in secret_files(name, r)]
    return [(key, path) for key, path in named if path is not None] + receivers


def _secrets(config: Config) -> list[str]:
    """Read every secret file as the caller; their paths.

    Raises:
        ConfigError: one is missing, unreadable or too open, naming its key.
    """
    for key, path in _secret_files(config):
        if not key.startswith("$.receiver."):  # a receiver's: read (and checked) by describe
            read_secret(path, key)
    for name, receiver in config.receiver.items():
        describe(name, receiver)  # every secret read, the URL's shape and transport checked
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
    routes = ", ".join(f"{r.mode}→{_targets(r.to)}" for r in config.route) or "none"
    smtp = config.smtp
    # Every value comes from a file: shown inert, so no escape in it reaches the terminal.
    lines = [
        f"config {config_path(args.config)}: ok",
        f"  broker  {', '.join(_no_password(url) for url in config.broker.nodes)}",
        f"  smtp    {smtp.host}:{smtp.port} from {smtp.from_}",
        f"  routes  {routes}",
        *(f"  receiver {describe(name, receiver)}" for name, receiver in config.receiver.items()),
        f"  store   {_no_password(config.store.url)}",
        *(
            [
                f"  web     {config.web.base_url} (listens on {config.web.listen});"
                f" {sum(1 for route in config.route if route.ask)} route(s) ask was-this-you"
            ]
            if config.web.base_url is not None
            else []
        ),
        f"  worker  retry delays {list(config.worker.retry_delays)} s,"
        f" require_user_id={config.worker.require_user_id}",
        *(f"  peer    {peer}" for peer in peers(config)),
        f"  secrets {', '.join(secrets) or 'none'} (mode ok)",
    ]
    lines += _catch_all_notes(config)
    if reader is not None:
        lines.append(f"  reader  {reader.pw_name} can read the config and every secret file")
    if reader is None and os.geteuid() == 0 and args.as_user is None:
        lines.append(f"  note    no user {SERVICE_USER} here: checked as root (--as-user USER)")
    for line in lines:
        print(visible(line))
    if args.broker:
        with open_broker(config) as broker:
            for spec in topology.queue_specs(config.worker.retry_delays,
                                             lanes=config.broker.alert_lanes):  # fmt: skip
                broker.queue_state(spec.name)  # raises QueueMissing with the fix
        print("  broker  connected; every queue exists")
        return _host_limits(config)
    return 0


def _catch_all_notes(config: Config) -> list[str]:
    """The upgrade note for routes (docs/routing-and-mail.md): an immediate route with no
    ``kinds`` and no ``services`` mails every su, sudo and console session too, once hosts
    report them (``install-host.sh --services``)."""
    return [
        f"  note    route #{n} (immediate, no kinds, no services) also mails every su, sudo"
        " and console session of hosts installed with --services: give it kinds or services"
        for n, route in enumerate(config.route, 1)
        if route.mode == "immediate" and not route.kinds and not route.services
    ]


def peers(config: Config) -> list[str]:
    """How each peer off this process is reached (``schemas.transport``'s words), e.g.
    ``broker mq1:5671 verified TLS``, ``store db:5432 verified TLS (verify-full)``."""
    found = [f"broker {transport.url_mode(url, AMQP_PORTS)}" for url in config.broker.nodes]
    store = config.store
    if is_postgres(store.url):
        found.append(f"store {transport.postgres_mode(store.url, store.ca_file)}")
    else:
        found.append(f"store {store.url} (SQLite, this machine)")
    smtp = config.smtp
    mode = transport.smtp_mode(smtp.host, smtp.port, starttls=smtp.starttls, ssl=smtp.ssl)
    return [*found, f"smtp {mode}"]


def _host_limits(config: Config) -> int:
    """Flag the host users of the config's vhost without connection and channel limits
    (``host_users.HOST_LIMITS``); 1 when there are any. Needs rabbitmqctl (the broker
    machine, as root): elsewhere it says it could not look."""
    try:
        loose = [e for e in host_users.entries(broker_vhost(config.broker)) if not e.limited]
    except BrokerError as exc:
        print(visible(f"  hosts   limits not checked: rabbitmqctl answers on the broker machine,"
                      f" as root ({exc})"))  # fmt: skip
        return 0
    if not loose:
        print("  hosts   every host user has its connection and channel limits")
        return 0
    names = ", ".join(entry.user for entry in loose[:20])
    more = f" and {len(loose) - 20} more" if len(loose) > 20 else ""
    print(visible(f"  hosts   {len(loose)} host user(s) WITHOUT connection/channel limits:"
                  f" {names}{more}; run loginwatch setup on the broker machine"))  # fmt: skip
    return 1


def _targets(recipients: tuple[str, ...]) -> str:
    """``2 recipient(s), 1 receiver(s)``: addresses and receivers of one route, counted."""
    receivers = sum(1 for r in recipients if reference(r) is not None)
    counts = [f"{len(recipients) - receivers} recipient(s)"] if len(recipients) > receivers else []
    return ", ".join(counts + ([f"{receivers} receiver(s)"] if receivers else []))


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
