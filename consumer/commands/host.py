"""``loginwatch host add|remove|list``: one write-only broker user per SSH host."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer import hosts
from consumer.cli import add_config_argument
from consumer.commands._common import config_of
from schemas.config import broker_vhost

SECRETS_DIR = "/etc/loginwatch/hosts"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "host",
        help="add, remove or list the broker users of SSH hosts (on the broker machine)",
        description=(
            "Manage host identities: each SSH host publishes as its own broker user host-NAME,"
            " which may only write to the loginwatch.events exchange (no read, no configure),"
            " and the broker refuses an event whose user_id is another host's. Runs"
            " rabbitmqctl, so run it as root on the broker machine. The vhost is the one in"
            " the config's [broker] url (or urls) unless --vhost is given. Of a cluster, run it"
            " on any node: the cluster shares its users."
        ),
    )
    # The options every action takes, after the action: `host add NAME --vhost V`.
    common = argparse.ArgumentParser(add_help=False)
    add_config_argument(common)
    common.add_argument("--vhost", help="RabbitMQ vhost (default: the config's)")
    common.add_argument(
        "--secrets-dir",
        default=SECRETS_DIR,
        help=f"where host password files go, NAME.password, mode 0600 (default {SECRETS_DIR})",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        parents=[common],
        help="create host-NAME with a random password; print the host's config",
        description=(
            "Create the broker user host-NAME with write-only permission on the events"
            " exchange and a random password, written to SECRETS_DIR/NAME.password (0600)."
            " Prints the [broker] and [host] config for the host, with the broker URLs as the"
            " host must reach them (--url, once per node of a cluster; a loopback URL only"
            " works for the broker machine itself): copy it and the password file to the host"
            " and run install-host.sh there, which puts them in /etc/loginwatch/host.toml and"
            " host.password."
        ),
    )
    add.add_argument("name", metavar="NAME", help="the host's name, as its [host] name says")
    add.add_argument(
        "--url",
        action="append",
        help="broker URL as the host reaches it, e.g. amqps://broker.example.org:5671/%%2F;"
        " repeat it for each node of a cluster (default: the config's [broker] url or urls)",
    )
    add.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="accept a plain amqp:// URL to another machine (the host's password then crosses"
        " the network unencrypted); without it such a URL is refused",
    )
    add.set_defaults(run=run_add)
    remove = actions.add_parser(
        "remove", parents=[common], help="delete host-NAME and its password file"
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=run_remove)
    listing = actions.add_parser(
        "list", parents=[common], help="list the host users and their permissions"
    )
    listing.set_defaults(run=run_list)


def _vhost(args: argparse.Namespace) -> str:
    return str(args.vhost) if args.vhost else broker_vhost(config_of(args).broker)


def _password_file(args: argparse.Namespace, name: str) -> Path:
    return Path(args.secrets_dir) / f"{name}.password"


def run_add(args: argparse.Namespace) -> int:
    name = hosts.host_name(args.name)
    # With --url the broker machine needs no loginwatch config at all.
    urls = tuple(map(str, args.url)) if args.url else config_of(args).broker.nodes
    vhost = args.vhost or hosts.vhost_of(urls[0])
    if len({hosts.vhost_of(url) for url in urls}) > 1:
        print("loginwatch host add: the URLs name different vhosts: every node of a cluster"
              " shares one vhost", file=sys.stderr)  # fmt: skip
        return 1
    plain = [url for url in urls if hosts.plaintext_elsewhere(url)]
    if plain and not args.allow_plaintext:
        # Refused before the user exists: the host would refuse this config itself.
        print(
            f"loginwatch host add: {hosts.host_url(plain[0], name)} would send {name}'s password"
            " unencrypted to another machine: give --url amqps://… (see deploy/README.md, TLS),"
            " or --allow-plaintext on a network you trust",
            file=sys.stderr,
        )
        return 1
    password_file = _password_file(args, name)
    hosts.add(name, vhost, password_file)
    for url in urls:
        if hosts.is_loopback(url):
            print(
                f"loginwatch host add: warning: the URL {hosts.host_url(url, name)} is this"
                f" machine's loopback: it reaches the broker only if {name} is this machine."
                " Give --url with the broker's name as the host reaches it, e.g."
                " --url amqps://broker.example.org:5671/%2F",
                file=sys.stderr,
            )
    print(f"# created broker user host-{name} (write-only on vhost {vhost!r}). On {name},")
    print(f"# with this text in {name}.toml and {password_file} copied to {name}.password:")
    print(f"#   sh deploy/install-host.sh --config {name}.toml --password-file {name}.password")
    host_urls = tuple(hosts.host_url(url, name) for url in urls)
    print(hosts.host_config(name, host_urls, allow_plaintext=args.allow_plaintext), end="")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    name = hosts.host_name(args.name)
    if hosts.remove(name, _password_file(args, name)):
        print(f"removed broker user host-{name}")
        return 0
    print(f"loginwatch host remove: no broker user host-{name}", file=sys.stderr)
    return 1


def run_list(args: argparse.Namespace) -> int:
    vhost = _vhost(args)
    found = hosts.entries(vhost)
    for entry in found:
        state = "write-only" if entry.write_only else f"NOT write-only on {vhost}"
        print(f"{entry.name}\t{entry.user}\t{state}")
    if not found:
        print(
            f"loginwatch host list: no host users on vhost {vhost!r}"
            " (loginwatch host add NAME makes one)",
            file=sys.stderr,
        )
    return 0
