"""Shared pieces of the digest tests: stores on both databases, configs, events, mail parsing."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from consumer.broker.connection import Broker
from consumer.digest.intake import event_row
from consumer.digest.process import DigestProcess, wire
from consumer.digest.sender import WindowSender
from consumer.digest.windows import current
from consumer.store import open_store
from schemas.config import Config, parse_config
from schemas.event import LoginEvent, Outcome, PamType
from tests.support.factories import event

OPS = "ops@example.com"
ALICE = "alice@example.com"
# 2026-11-26 is a Thursday; windows are days starting 07:00 Berlin (06:00 UTC in winter).
DAY1 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def config_text(
    store_url: str, *extra: str, smtp_port: int = 25, amqp_url: str = "", digest: str = ""
) -> str:
    broker = f'[broker]\nurl = "{amqp_url}"\n' if amqp_url else ""
    return "\n".join([
        broker,
        f'[store]\nurl = "{store_url}"\n',
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nfrom = "loginwatch@example.org"\n',
        '[enrich]\ndns = false\n',
        '[digest]\nevery = "1d"\nat = "07:00"\ntimezone = "Europe/Berlin"\nlease = "1s"\n'
        f'burst_failures = 3\nburst_window = "5m"\n{digest}\n',
        f'[[route]]\nto = ["{OPS}"]\nmode = "digest"\n',
        f'[[route]]\nto = ["{ALICE}"]\nhosts = ["web-*"]\n',
        *extra,
    ])  # fmt: skip


def make_config(store_url: str, *extra: str, **kw: Any) -> Config:
    return parse_config(config_text(store_url, *extra, **kw))


def no_dns(_address: str) -> tuple[str | None, bool, str]:
    return None, False, ""


def digest_for(
    config: Config,
    mailer: Any = None,
    owner: str = "test",
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    broker: Callable[[], Broker] | None = None,
) -> DigestProcess:
    """The digest side wired as ``loginwatch digest`` wires it, on a store of its own."""
    return wire(config, open_store(config.store.url), mailer=mailer, annotate=no_dns,
                owner=owner, clock=clock, broker=broker)  # fmt: skip


def digests_for(config: Config, sender: Any = None, owner: str = "test") -> WindowSender:
    return digest_for(config, sender, owner).sender


def login(
    at: datetime, host: str, user: str = "bob", ip: str = "192.0.2.10", **kw: Any
) -> LoginEvent:
    return event(time=at, host=host, user=user, client_ip=ip, rhost=ip, **kw)


def failure(at: datetime, host: str, user: str, ip: str) -> LoginEvent:
    return event(time=at, host=host, user=user, client_ip=ip, rhost=ip,
                 pam_type=PamType.AUTH, outcome=Outcome.FAILURE, auth_method="password",
                 key_type="", key_sha256=b"")  # fmt: skip


def store_events(digests: WindowSender, events: list[LoginEvent], now: datetime) -> None:
    collecting = current(digests.schedule, now, [])
    rows = [event_row(e, digests.config.route, collecting, now) for e in events]
    digests.store.add_events(rows)


def totals(text: str) -> dict[str, str]:
    """The "Totals" block of a digest's text part: label -> number."""
    block = text.split("Totals\n", 1)[1].split("\n\n", 1)[0]
    return {m[1].strip(): m[2] for m in re.finditer(r"^  (.+?)\s{2,}(\S+)$", block, re.M)}


def day(n: int, hours: float = 0) -> datetime:
    """``n`` days after DAY1 07:00 Berlin, plus ``hours``."""
    return DAY1 + timedelta(days=n, hours=hours)
