"""``loginwatch digest --send-now`` against a real broker and SMTP server, with a host that
claims absurd ``dropped`` counts and a clock years ahead (issue 9 items 7 and 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from consumer.broker.connection import Broker
from consumer.digest.tables import MAX_DROPPED
from schemas import topology
from schemas.config import parse_config
from schemas.event import LoginEvent, encode
from tests.support.digest_support import (
    OPS,
    config_text,
    day,
    failure,
    login,
    totals,
)
from tests.support.services import Vhost, fresh_vhost
from tests.support.smtp_server import SmtpServer, text_part
from tests.support.worker_helpers import ROOT, publish

pytestmark = pytest.mark.integration


@pytest.fixture
def vhost_h() -> Iterator[Vhost]:
    with fresh_vhost("loginwatch-dh") as made:
        with Broker(parse_config(f'[broker]\nurl = "{made.url()}"').broker) as broker:
            broker.declare(topology.queue_specs())
        yield made


def send(vhost: Vhost, *events: LoginEvent) -> None:
    for e in events:
        publish(vhost, encode(e), routing_key=e.kind, message_id=e.id_hex)


def digest(config: Path, clock: datetime, option: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOGINWATCH_TEST_CLOCK": clock.isoformat()}
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", "digest", option, "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param((2**64 - 1,), id="2^64-1 (SQLite could not bind it)"),
        pytest.param((2**62, 2**62), id="2x2^62 (SUM overflowed, --send-now looped)"),
    ],
)
def test_send_now_sends_the_window_of_a_host_claiming_huge_drops(
    vhost_h: Vhost,
    tmp_path: Path,
    store_url: str,
    claims: tuple[int, ...],
) -> None:
    with SmtpServer() as smtp:
        config = tmp_path / "loginwatch.toml"
        config.write_text(config_text(store_url, smtp_port=smtp.port, amqp_url=vhost_h.url()))
        assert digest(config, day(0, 0.5), "--once").returncode == 0  # the first start
        innocent = [login(day(0, 2), "web-1", "alice"),
                    failure(day(0, 3), "web-1", "mallory", "203.0.113.9")]  # fmt: skip
        evil = [login(day(0, 2), "db-1", f"u{n}", dropped=c) for n, c in enumerate(claims)]
        # ... and one whose clock is years ahead: counted now, named in the digest.
        ahead = login(day(0, 4) + timedelta(days=3 * 365 + 1), "clock-1", "bob")
        send(vhost_h, innocent[0], *evil, innocent[1], ahead)
        stored = digest(config, day(0, 4.5), "--once")  # the events arrive before the cut
        assert stored.returncode == 0, stored.stderr
        done = digest(config, day(0, 5), "--send-now")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in stored.stderr + done.stderr
        mails = smtp.wait_for(2)
        with Broker(parse_config(f'[broker]\nurl = "{vhost_h.url()}"').broker) as broker:
            assert broker.queue_state(topology.DIGEST_QUEUE).messages == 0
    text = next(text_part(m.message) for m in mails if m.message["To"] == OPS)
    counted = totals(text)
    # The wire type may refuse such counts (then the worker dead-letters them); stored,
    # each counts as at most MAX_DROPPED. The innocent events are there either way.
    accepted = int(counted["events"]) - 3
    assert accepted in (0, len(claims))
    assert int(counted["events dropped by host spools"]) == accepted * MAX_DROPPED
    assert (counted["logins"], counted["failed logins"]) == (str(2 + accepted), "1")
    assert "host clock off by 3 y" in text.split("Host clocks more than 5 min off", 1)[1]
