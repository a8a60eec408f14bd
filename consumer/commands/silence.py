"""``loginwatch silence add|list|expire``: run-time silences, in the style of ``amtool silence``.

A silence made here is in the store: every worker honours it within ``[worker]
silence_interval`` (at most 5 s), with no restart. ``list`` shows the config file's
``[[silence]]`` too, marked ``config`` (they end by editing the file, not with ``expire``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime, timedelta

from consumer.commands._common import add_config_argument, config_of
from consumer.core.display import visible
from consumer.silences.rules import MATCHERS, Rule, from_config
from consumer.silences.table import SilenceTable
from consumer.store import open_store
from consumer.web.overview import age
from schemas.config import Duration, store_password
from schemas.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "silence",
        help="add, list or expire run-time silences (every worker picks them up within seconds)",
        description=(
            "Silences keep matching events out of the inbox (they still reach the digest)."
            " Made here, they live in the store, and every worker honours them within"
            " [worker] silence_interval, without a restart."
        ),
    )
    actions = parser.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="add a silence: loginwatch silence add --hosts 'db-*' --for 2h --comment CHG-42",
        description=(
            "Add a silence. Every matcher given must match (globs for hosts, case-insensitive,"
            " users, kinds and PAM services; networks for sources; SHA256: fingerprints,"
            " exact); each takes"
            " a comma-separated list and may be repeated. At least one matcher is needed."
        ),
    )
    add_config_argument(add)
    for name in MATCHERS:
        add.add_argument(f"--{name}", action="append", default=[], metavar="LIST")
    add.add_argument("--to", action="append", default=[], metavar="LIST",
                     help="only for these recipients (default: everyone)")  # fmt: skip
    add.add_argument("--for", dest="lasting", required=True, metavar="DURATION",
                     help="how long: 90m, 2h, 1d, 1w")  # fmt: skip
    add.add_argument("--comment", required=True, help="why (a ticket, a change)")
    add.add_argument("--author", help="who makes it (default: $SUDO_USER, else your user name)")
    add.set_defaults(run=run_add)
    show = actions.add_parser("list", help="list silences and acks in force, with age and author")
    add_config_argument(show)
    show.add_argument("--all", action="store_true", help="also those that ended in the last day")
    show.set_defaults(run=run_list)
    end = actions.add_parser("expire", help="end a silence now (not a config one)")
    add_config_argument(end)
    end.add_argument("ids", nargs="+", metavar="ID")
    end.add_argument("--author", help="who ends it (default: $SUDO_USER, else your user name)")
    end.set_defaults(run=run_expire)


def _author(given: str | None) -> str:
    return given or os.environ.get("SUDO_USER") or getpass.getuser()


def _listed(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def run_add(args: argparse.Namespace) -> int:
    config = config_of(args)
    try:
        lasting = Duration(args.lasting)
    except ValueError as exc:
        raise ConfigError(f"--for: {exc}") from None
    now = datetime.now(UTC)
    rule = Rule(id="", starts=now, ends=now + timedelta(seconds=lasting.seconds),
                comment=args.comment, created_by=_author(args.author), created_at=now,
                to=tuple(t.lower() for t in _listed(args.to)), hosts=_listed(args.hosts),
                users=_listed(args.users), kinds=_listed(args.kinds),
                sources=_listed(args.sources),
                fingerprints=_listed(args.fingerprints))  # fmt: skip
    with open_store(config.store.url, password=store_password(config.store)) as store:
        made = SilenceTable(store.db).add(rule)
    print(made.id)
    print(f"silence {made.id} until {made.until:%Y-%m-%d %H:%M} UTC: {_matchers(made)}",
          file=sys.stderr)  # fmt: skip
    return 0


def _matchers(rule: Rule) -> str:
    shown = " ".join(f"{name}={','.join(values)}" for name, values in rule.matchers().items())
    return visible(shown, 200)


_ROW = "{:<14} {:<7} {:<6} {:<17} {:<7} {:<12}"


def run_list(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = datetime.now(UTC)
    configured = [from_config(i, s) for i, s in enumerate(config.silence)]
    with open_store(config.store.url, password=store_password(config.store)) as store:
        table = SilenceTable(store.db)
        stored = table.recent(now, 1000) if args.all else table.open(now)
    rules = [r for r in configured if args.all or r.in_force(now)] + stored
    head = ("ID", "KIND", "ORIGIN", "UNTIL (UTC)", "AGE", "BY")
    print(_ROW.format(*head), "MATCHERS · TO · COMMENT")
    for rule in rules:
        until = f"{rule.until:%Y-%m-%d %H:%M}" + ("" if rule.in_force(now) else "*")
        made = age(rule.created_at, now) if rule.created_at else "-"
        to = visible(", ".join(rule.to), 80) or "everyone"
        cells = (rule.id, rule.kind, rule.origin, until, made, visible(rule.created_by, 12))
        print(_ROW.format(*cells), f"{_matchers(rule)} · {to} · {visible(rule.comment, 120)}")
    if args.all:
        print("(* ended)", file=sys.stderr)
    if not rules:
        print("(no silence in force)", file=sys.stderr)
    return 0


def run_expire(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = datetime.now(UTC)
    with open_store(config.store.url, password=store_password(config.store)) as store:
        table = SilenceTable(store.db)
        for silence_id in args.ids:
            rule = table.expire(silence_id, _author(args.author), now)
            print(f"{rule.kind} {rule.id} expired")
    return 0
