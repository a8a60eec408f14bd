"""``loginwatch send-test --to ADDR``: prove the SMTP settings (and the templates) work."""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from datetime import UTC, datetime

from consumer.cli import add_config_argument
from consumer.commands._common import config_of
from consumer.decisions import Action, Decision
from consumer.enriched import Enriched, FirstSeen
from consumer.stages.render import Renderer
from consumer.stages.smtp import SmtpSender
from schemas.config import Config
from schemas.event import LoginEvent, Outcome, PamType

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "send-test",
        help="send a sample alert mail to prove the SMTP settings",
        description=(
            "Render a sample login alert with the configured templates and send it through"
            " the configured SMTP server (STARTTLS/TLS/AUTH as set in [smtp]), once, without"
            " retries. Prints where it went; on failure prints one line naming the problem"
            " and exits 1."
        ),
    )
    add_config_argument(parser)
    parser.add_argument("--to", required=True, metavar="ADDR", type=_address, help="recipient")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the rendered mail (headers, text and HTML) instead of sending it",
    )
    parser.set_defaults(run=run)


def _address(text: str) -> str:
    if not _EMAIL.match(text):
        raise argparse.ArgumentTypeError(f"not an e-mail address: {text!r}")
    return text


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    now = datetime.now(UTC)
    msg = Renderer(config).render(
        sample(now), _decision(args.to), now=now, subject_prefix="[loginwatch test] "
    )
    if args.dry_run:
        sys.stdout.write(msg.as_string())
        return 0
    with SmtpSender(config.smtp, attempts=1) as sender:
        sender.send(msg)
    print(f"sent a test mail to {args.to} via {_route(config)}")
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
    )


def _decision(to: str) -> Decision:
    return Decision(
        action=Action.IMMEDIATE,
        recipient=to,
        reason="loginwatch send-test: a sample alert to prove the mail settings (no real login)",
    )


def _route(config: Config) -> str:
    smtp = config.smtp
    how = "implicit TLS" if smtp.ssl else "STARTTLS" if smtp.starttls else "no TLS"
    auth = f", AUTH as {smtp.username}" if smtp.username else ""
    return f"{smtp.host}:{smtp.port} ({how}{auth})"
