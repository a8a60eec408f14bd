"""``loginwatch check-config``: load the config, check secrets, optionally the broker."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit, urlunsplit

from consumer.cli import add_config_argument
from consumer.commands._common import config_of, open_broker
from schemas import topology
from schemas.config import Config, config_path, read_secret


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate the config file and its secret files; --broker also connects",
        description=(
            "Load and validate the config, check that every secret file exists and is"
            " readable by its owner only, and print a summary. With --broker, also connect"
            " to RabbitMQ and check that the queues exist. Exits 1 on the first problem,"
            " naming the key."
        ),
    )
    add_config_argument(parser)
    parser.add_argument(
        "--broker", action="store_true", help="also connect to the broker and check the queues"
    )
    parser.set_defaults(run=run)


def _secrets(config: Config) -> list[str]:
    checked = []
    for key, path in (
        ("$.broker.password_file", config.broker.password_file),
        ("$.smtp.password_file", config.smtp.password_file),
    ):
        if path is not None:
            read_secret(path, key)  # raises ConfigError naming the key
            checked.append(path)
    return checked


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    secrets = _secrets(config)
    routes = ", ".join(f"{r.mode}→{len(r.to)} recipient(s)" for r in config.route) or "none"
    print(f"config {config_path(args.config)}: ok")
    print(f"  broker  {_no_password(config.broker.url)}")
    print(f"  smtp    {config.smtp.host}:{config.smtp.port} from {config.smtp.from_}")
    print(f"  routes  {routes}")
    print(f"  store   {_no_password(config.store.url)}")
    print(f"  worker  retry delays {list(config.worker.retry_delays)} s,"
          f" require_user_id={config.worker.require_user_id}")  # fmt: skip
    print(f"  secrets {', '.join(secrets) or 'none'} (mode ok)")
    if args.broker:
        with open_broker(config) as broker:
            for spec in topology.queue_specs(config.worker.retry_delays):
                broker.queue_state(spec.name)  # raises QueueMissing with the fix
        print("  broker  connected; every queue exists")
    return 0


def _no_password(url: str) -> str:
    """``amqp://user:secret@host/`` → ``amqp://user:***@host/``: summaries end up in tickets."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
