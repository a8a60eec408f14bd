"""``loginwatch host add|remove|retire|list``: one write-only broker user per SSH host, and
the end of the quiet-host watch on one (``retire``)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from consumer.broker import host_users, topic_keys
from consumer.commands._common import add_config_argument, config_of
from consumer.core.display import quoted, visible
from consumer.store import open_store
from schemas.config import store_password
from schemas.nodes import broker_vhost

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
            " exchange, limits on what it may hold open at the broker (8 connections, 16"
            " channels), and a random password, written to SECRETS_DIR/NAME.password (0600)."
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
        "remove",
        parents=[common],
        help="delete host-NAME and its password file: the host can no longer publish (the"
        " quiet-host watch goes on: retire ends it)",
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=run_remove)
    retire = actions.add_parser(
        "retire",
        parents=[common],
        help="end the watch on a host taken out of service: no quiet-host alert or digest"
        " line for it (its broker user stays: remove deletes that)",
        description=(
            "A host that sends no event and no heartbeat for [hosts] quiet_after raises one"
            " host-quiet alert and a line in every digest until it reports again. Retiring"
            " it ends that watch (in the store, on the central side: no broker access"
            " needed); a report from it later starts the watch again. Its broker user is"
            " untouched: loginwatch host remove deletes it, so the host can no longer"
            " publish, and does not end the watch."
        ),
    )
    retire.add_argument("name", metavar="NAME")
    retire.set_defaults(run=run_retire)
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="list the host users, their permissions, their connection/channel limits and the"
        " routing keys they may publish with",
    )
    listing.set_defaults(run=run_list)
    strict = actions.add_parser(
        "strict",
        parents=[common],
        help="after a host's hook was upgraded: refuse its old one-word routing keys",
        description=(
            "Host users made before alert lanes may publish an old hook's one-word routing"
            " keys (the event's kind), which all share loginwatch.alerts (setup allowed them)."
            " Once the host runs a hook that publishes host-NAME.event, this leaves it its own"
            " keys only: a flood from it then reaches its own lane only. New hosts (host add)"
            " are strict from the start."
        ),
    )
    strict.add_argument("names", metavar="NAME", nargs="*", help="the hosts (or --all)")
    strict.add_argument("--all", action="store_true", help="every host user of the vhost")
    strict.set_defaults(run=run_strict)


def _vhost(args: argparse.Namespace) -> str:
    return str(args.vhost) if args.vhost else broker_vhost(config_of(args).broker)


def _password_file(args: argparse.Namespace, name: str) -> Path:
    return Path(args.secrets_dir) / f"{name}.password"


def run_add(args: argparse.Namespace) -> int:
    name = host_users.host_name(args.name)
    # With --url the broker machine needs no loginwatch config at all.
    urls = tuple(map(str, args.url)) if args.url else config_of(args).broker.nodes
    vhost = args.vhost or host_users.vhost_of(urls[0])
    if len({host_users.vhost_of(url) for url in urls}) > 1:
        print("loginwatch host add: the URLs name different vhosts: every node of a cluster"
              " shares one vhost", file=sys.stderr)  # fmt: skip
        return 1
    plain = [url for url in urls if host_users.plaintext_elsewhere(url)]
    if plain and not args.allow_plaintext:
        # Refused before the user exists: the host would refuse this config itself.
        print(
            f"loginwatch host add: {host_users.host_url(plain[0], name)} would send {name}'s"
            " password"
            " unencrypted to another machine: give --url amqps://… (see deploy/README.md, TLS),"
            " or --allow-plaintext on a network you trust",
            file=sys.stderr,
        )
        return 1
    password_file = _password_file(args, name)
    host_users.add(name, vhost, password_file)
    for url in urls:
        if host_users.is_loopback(url):
            print(
                f"loginwatch host add: warning: the URL {host_users.host_url(url, name)} is this"
                f" machine's loopback: it reaches the broker only if {name} is this machine."
                " Give --url with the broker's name as the host reaches it, e.g."
                " --url amqps://broker.example.org:5671/%2F",
                file=sys.stderr,
            )
    print(f"# created broker user host-{name} (write-only on vhost {vhost!r}). On {name},")
    print(f"# with this text in {name}.toml and {password_file} copied to {name}.password:")
    print(f"#   sh deploy/install-host.sh --config {name}.toml --password-file {name}.password")
    host_urls = tuple(host_users.host_url(url, name) for url in urls)
    print(host_users.host_config(name, host_urls, allow_plaintext=args.allow_plaintext), end="")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    name = host_users.host_name(args.name)
    if host_users.remove(name, _password_file(args, name)):
        print(f"removed broker user host-{name}: the host can no longer publish. Its"
              " quiet-host watch goes on (an alert once it is quiet for [hosts] quiet_after):"
              f" loginwatch host retire {name} ends it.")  # fmt: skip
        return 0
    print(f"loginwatch host remove: no broker user host-{name}", file=sys.stderr)
    return 1


def run_retire(args: argparse.Namespace) -> int:
    config = config_of(args)
    name = host_users.host_name(args.name)
    with open_store(config.store.url, password=store_password(config.store),
                    ca_file=config.store.ca_file) as store:  # fmt: skip
        retired = store.retire_host(name, datetime.now(UTC))
    if not retired:
        print(f"loginwatch host retire: no host {quoted(name)} ever reported", file=sys.stderr)
        return 1
    print(f"retired host {name}: no quiet-host alert or digest line for it until it reports"
          f" again. Its broker user host-{name} stays: loginwatch host remove {name} deletes"
          " it (the host can then no longer publish).")  # fmt: skip
    return 0


def run_list(args: argparse.Namespace) -> int:
    vhost = _vhost(args)
    found = host_users.entries(vhost)
    patterns = topic_keys.write_patterns(vhost)
    for entry in found:
        state = "write-only" if entry.write_only else f"NOT write-only on {vhost}"
        keys = topic_keys.keys_of(entry.user, patterns).value
        # A broker user's name is whatever its creator typed: each field is shown inert.
        fields = (entry.name, entry.user, state, _limits(entry), keys)
        print("\t".join(visible(field) for field in fields))
    if not found:
        print(
            visible(f"loginwatch host list: no host users on vhost {vhost!r}")
            + " (loginwatch host add NAME makes one)",
            file=sys.stderr,
        )
    loose = sum(not entry.limited for entry in found)
    if loose:
        print(
            f"loginwatch host list: {loose} host user(s) without connection/channel limits:"
            " run loginwatch setup on the broker machine, which sets them",
            file=sys.stderr,
        )
    return 0


def _limits(entry: host_users.HostEntry) -> str:
    if not entry.limited:
        return "NO LIMITS" if not entry.limits else f"LIMITS TOO LOOSE {entry.limits}"
    return (
        f"max {entry.limits['max-connections']} connections,"
        f" {entry.limits['max-channels']} channels"
    )


def run_strict(args: argparse.Namespace) -> int:
    vhost = _vhost(args)
    if args.all == bool(args.names):
        print("loginwatch host strict: name the hosts, or give --all", file=sys.stderr)
        return 2
    known = {entry.name: entry.user for entry in host_users.entries(vhost)}
    names = sorted(known) if args.all else [host_users.host_name(n) for n in args.names]
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"loginwatch host strict: no host user for {', '.join(unknown)} on vhost"
              f" {vhost!r}", file=sys.stderr)  # fmt: skip
        return 1
    topic_keys.restrict_all(vhost, [known[name] for name in names])
    for name in names:
        print(f"{name}: {known[name]} may publish its own routing keys only")
    return 0
