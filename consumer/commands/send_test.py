"""``loginwatch send-test --to ADDR|receiver:NAME``: prove a target's settings work."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from datetime import UTC, datetime

from consumer.channels.outlets import open_target, preview
from consumer.commands._common import add_config_argument, config_of
from consumer.core.decisions import Action, Decision
from consumer.core.enriched import Enriched, FirstSeen
from consumer.stages.render import Renderer
from schemas.config import Config
from schemas.event import LoginEvent, Outcome, PamType
from schemas.receivers import kind_of, recipient_problem, reference, resolve


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "send-test",
        help="send a sample alert to an address or a receiver, to prove its settings",
        description=(
            "Make a sample login alert and send it, once and without retries: to an"
            " address (--to ADDR) with the configured templates through the configured SMTP"
            " server (STARTTLS/TLS/AUTH as set in [smtp]), or to a receiver (--to"
            " receiver:NAME, a [receiver.NAME] section) through its channel. Prints where it"
            " went; on failure prints one line naming the problem (never a secret) and exits 1."
        ),
    )
    add_config_argument(parser)
    parser.add_argument(
        "--to",
        required=True,
        metavar="ADDR|receiver:NAME",
        type=_target,
        help="an address, or receiver:NAME",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be sent (the mail, or the receiver's JSON body) instead",
    )
    parser.set_defaults(run=run)


def _target(text: str) -> str:
    why = recipient_problem(text)
    if why:
        raise argparse.ArgumentTypeError(why)
    return text


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = datetime.now(UTC)
    target: str = args.to
    key = f"test:{os.urandom(8).hex()}:{target}"
    notice = Renderer(config).notice(sample(now), _decision(target), key, now, test=True)
    name = reference(target)
    if args.dry_run:
        if notice.mail is not None:
            sys.stdout.write(notice.mail.as_string())
        elif name is not None and name in config.receiver:
            sys.stdout.write(preview(config.receiver[name], notice).decode() + "\n")
        else:
            open_target(config, target)  # raises: no such receiver
        return 0
    channel = open_target(config, target, attempts=1)
    try:
        channel.deliver(notice)
    finally:
        channel.close()
    if name is None:
        print(f"sent a test mail to {target} via {_route(config)}")
    else:
        receiver = config.receiver[name]
        where = resolve(name, receiver).shown
        print(f"sent a test notice to {target} ({kind_of(receiver)} → {where})")
    return 0


def sample(now: datetime) -> Enriched:
    """A made-up login of this machine's operator, marked as a test everywhere it shows."""
    event = LoginEvent(
        id=os.urandom(16),
        time=now,
        host=socket.gethostname()[:253] or "localhost",
        service="sshd",
        pam_type=PamType.OPEN_SESSION,
        outcome=Outcome.SUCCESS,
        user="loginwatch-test",
        client_ip="192.0.2.1",
        client_port=50000,
        auth_method="publickey",
        key_type="ssh-ed25519",
        key_sha256=bytes(32),
    )
    return Enriched(
        event=event,
        rdns="test.example.net",
        rdns_verified=False,
        network="192.0.2.0/24",
        first_seen=FirstSeen(address=True),
        received=now,
    )


def _decision(to: str) -> Decision:
    what = "mail" if reference(to) is None else "receiver"
    return Decision(
        action=Action.IMMEDIATE,
        recipient=to,
        reason=f"loginwatch send-test: a sample alert to prove the {what} settings (no real login)",
    )


def _route(config: Config) -> str:
    smtp = config.smtp
    how = "implicit TLS" if smtp.ssl else "STARTTLS" if smtp.starttls else "no TLS"
    auth = f", AUTH as {smtp.username}" if smtp.username else ""
    return f"{smtp.host}:{smtp.port} ({how}{auth})"
