"""What several subcommands share: the ``--config`` option, loading the config, opening the
broker."""

from __future__ import annotations

import argparse

from consumer.broker.connection import Broker
from schemas.config import Config, config_path, load_config


def config_of(args: argparse.Namespace) -> Config:
    """The config named by ``--config`` (or the environment / default path).

    Raises:
        ConfigError: unreadable or invalid.
    """
    return load_config(config_path(getattr(args, "config", None)))


def open_broker(config: Config) -> Broker:
    """A connected broker.

    Raises:
        BrokerError: unreachable or refused.
    """
    broker = Broker(config.broker)
    broker.connect()
    return broker


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $LOGINWATCH_CONFIG, else /etc/loginwatch/loginwatch.toml)",
    )
