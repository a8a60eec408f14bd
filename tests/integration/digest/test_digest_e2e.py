"""The digest scheduler end to end: real RabbitMQ, a real SMTP server (aiosmtpd), a real store.

Simulated days come from an injected clock: in-process (the ``Scheduler`` object with a
settable clock) or, for the subprocess tests, ``LOGINWATCH_TEST_CLOCK``.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from consumer.broker.connection import Broker
from consumer.channels.mail import SmtpSender
from consumer.digest.scheduler import Scheduler
from consumer.digest.tables import DigestStore
from consumer.store import open_store
from schemas import topology
from schemas.config import Config, parse_config
from schemas.event import LoginEvent, encode
from tests.support.chaos_support import publish_events
from tests.support.digest_support import (
    ALICE,
    OPS,
    config_text,
    day,
    digest_for,
    failure,
    login,
    totals,
)
from tests.support.queue_counts import counts
from tests.support.services import Vhost, fresh_vhost
from tests.support.smtp_server import Received, SmtpServer, text_part
from tests.support.worker_helpers import ROOT, publish

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def vhost_d() -> Iterator[Vhost]:
    with fresh_vhost("loginwatch-d") as made:
        with Broker(parse_config(f'[broker]\nurl = "{made.url()}"').broker) as broker:
            broker.declare(topology.queue_specs())
        yield made


def send(vhost: Vhost, *events: LoginEvent) -> None:
    for e in events:
        publish(vhost, encode(e), routing_key=e.kind, message_id=e.id_hex)


def scheduler(config: Config, clock: Clock) -> Scheduler:
    return digest_for(config, SmtpSender(config.smtp), "t", clock=clock).scheduler()


def by_window(mails: list[Received]) -> Counter[tuple[str, str]]:
    """Copies per (window key, recipient)."""
    return Counter((m.message["X-Loginwatch-Digest"], m.message["To"]) for m in mails)


def test_each_recipient_gets_the_expected_digests(
    vhost_d: Vhost,
    store_url: str,
) -> None:
    with SmtpServer() as smtp:
        config = parse_config(config_text(store_url, smtp_port=smtp.port, amqp_url=vhost_d.url()))
        clock = Clock(day(0, 0.5))
        digests = scheduler(config, clock)
        assert digests.run(once=True) == 0  # the first start: nothing is due yet
        # Day 0 on three hosts; a poison message sits in the dead queue.
        send(vhost_d, *[login(day(0, h), "web-1") for h in (2, 3, 4)],
             login(day(0, 14), "web-2", "root", "198.51.100.7"),
             login(day(0, 3), "db-1", "carol", "198.51.100.8", dropped=5),
             *[failure(day(0, 5) + timedelta(seconds=i), "web-1", f"u{i}", "203.0.113.9")
               for i in range(4)])  # fmt: skip
        with Broker(config.broker) as broker:
            broker.publish(topology.REROUTE_EXCHANGE, topology.DEAD_QUEUE, b"poison")
        clock.now = day(0, 15)
        assert digests.run(once=True) == 0
        assert smtp.messages == []
        clock.now = day(1, 0.01)  # day 0's window has ended
        assert digests.run(once=True) == 0
        first = smtp.wait_for(2)
        # Day 1: two logins; day 2: nothing at all.
        send(vhost_d, login(day(1, 2), "web-1"), login(day(1, 3), "db-1", "carol"))
        clock.now = day(1, 4)
        assert digests.run(once=True) == 0
        clock.now = day(3, 0.01)
        assert digests.run(once=True) == 0
        assert digests.run(once=True) == 0  # nothing new: no second copy of anything
        mails = smtp.wait_for(6)
        time.sleep(0.3)
    digests.store.store.close()
    assert len(smtp.messages) == 6
    assert set(by_window(mails).values()) == {1}
    text = {(m.message["X-Loginwatch-Digest"][:13], m.message["To"]): text_part(m.message)
            for m in mails}  # fmt: skip
    ops0, alice0 = totals(text["20261126T0600", OPS]), totals(text["20261126T0600", ALICE])
    assert (ops0["events"], ops0["logins"], ops0["failed logins"], ops0["hosts"]) == (
        "9", "5", "4", "3")  # fmt: skip
    assert (ops0["root logins"], ops0["events dropped by host spools"]) == ("1", "5")
    assert ops0["dead queue (now)"] == "1"
    assert (alice0["events"], alice0["hosts"]) == ("8", "2")
    assert "203.0.113.9: 2 failures inside bursts" in text["20261126T0600", OPS]
    assert totals(text["20261127T0600", OPS])["events"] == "2"
    assert totals(text["20261127T0600", ALICE])["events"] == "1"
    # Day 2 had no events; the dead queue still holds a message, so it is not "all quiet".
    assert totals(text["20261128T0600", OPS])["events"] == "0"
    assert "All quiet" not in text["20261128T0600", OPS]
    assert [m.message["To"] for m in first] == [ALICE, OPS]


def digest_config(tmp_path: Path, smtp: SmtpServer, vhost: Vhost) -> Path:
    config = tmp_path / "loginwatch.toml"
    config.write_text(config_text(str(tmp_path / "lw.db"), smtp_port=smtp.port,
                                  amqp_url=vhost.url()))  # fmt: skip
    return config


def run_digest(
    config: Path, clock: datetime, *options: str, crash: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``loginwatch digest OPTIONS`` (``--once`` when none) at the simulated ``clock``."""
    env = {**os.environ, "LOGINWATCH_TEST_CLOCK": clock.isoformat(),
           "LOGINWATCH_TEST_CRASH_AT": crash}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", "digest", *(options or ("--once",)),
         "--config", str(config)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False,
    )  # fmt: skip


def test_a_scheduler_killed_at_any_point_sends_each_digest_once(
    vhost_d: Vhost, tmp_path: Path
) -> None:
    with SmtpServer() as smtp:
        config = digest_config(tmp_path, smtp, vhost_d)
        expected = 0
        for n, point in enumerate(("after-claim", "after-smtp", "after-record")):
            send(vhost_d, login(day(n, 2), "web-1", f"user{n}"))
            assert run_digest(config, day(n, 3)).returncode == 0  # stores the event
            crashed = run_digest(config, day(n + 1, 0.01), crash=point)
            assert crashed.returncode == -9, crashed.stderr
            done = run_digest(config, day(n + 1, 0.02))
            assert done.returncode == 0, done.stderr
            # The SMTP server accepted ALICE's digest before the crash after-smtp: it is
            # sent again, with the same Message-ID (see consumer/digest/sender.py).
            expected += 3 if point == "after-smtp" else 2
            smtp.wait_for(expected)
        time.sleep(0.3)
        mails = list(smtp.messages)
    assert len(mails) == expected
    windows = by_window(mails)
    assert len(windows) == 6  # 3 windows x 2 recipients: none missing
    ids = Counter((m.message["X-Loginwatch-Digest"], m.message["To"], m.message["Message-ID"])
                  for m in mails)  # fmt: skip
    assert len(ids) == 6  # one digest (one Message-ID) per window and recipient
    assert sorted(windows.values()) == [1, 1, 1, 1, 1, 2]
    for m in mails:
        assert totals(text_part(m.message))["logins"] == "1"


def test_two_schedulers_send_each_window_once(vhost_d: Vhost, tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        config = tmp_path / "loginwatch.toml"
        text = config_text(str(tmp_path / "lw.db"), smtp_port=smtp.port, amqp_url=vhost_d.url())
        # Two-second windows of real time; a 2 s lease (a loaded 2-core machine can stall
        # a process for longer than 1 s: the lease then moves, which is also covered).
        text = text.replace('every = "1d"', 'every = "2s"').replace('lease = "1s"', 'lease = "2s"')
        config.write_text(text)
        logs = [(tmp_path / f"s{i}.log").open("wb") for i in range(2)]
        procs = [
            subprocess.Popen([sys.executable, "-m", "consumer.cli", "digest", "--config",
                              str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            for log in logs
        ]  # fmt: skip
        try:
            smtp.wait_for(4, timeout=20)  # two windows sent
            holder = _holder(tmp_path / "lw.db")
            victim = next(p for p in procs if p.pid == holder)
            victim.kill()  # the standby takes over after the 1 s lease
            victim.wait(10)
            before = len(smtp.messages)
            smtp.wait_for(before + 4, timeout=20)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:  # each stops after its current step: 20 s+ seen at load 25
                proc.wait(90)
            for log in logs:
                log.close()
        mails = list(smtp.messages)
    windows = by_window(mails)
    ids = {(m.message["X-Loginwatch-Digest"], m.message["To"], m.message["Message-ID"])
           for m in mails}  # fmt: skip
    assert len(ids) == len(windows)  # one digest (one Message-ID) per window and recipient
    # A second copy only if the kill hit the instant between an SMTP 250 and its record.
    assert sum(windows.values()) - len(windows) <= 1, windows
    keys = sorted({key for key, _ in windows})
    for a, b in itertools.pairwise(keys):  # contiguous: no window was skipped
        assert a.split("-")[1] == b.split("-")[0]
    assert all(windows[key, to] >= 1 for key in keys for to in (ALICE, OPS))


def _holder(path: Path, timeout: float = 10) -> int:
    """The pid of the scheduler holding the lease. A stalled holder (a busy machine) can let
    the lease lapse for a moment before either scheduler takes it again: wait for one."""
    store = DigestStore(open_store(str(path)))
    deadline = time.monotonic() + timeout
    try:
        while not (holder := store.holder(time.time()) or ""):
            assert time.monotonic() < deadline, "no scheduler took the lease"
            time.sleep(0.05)
    finally:
        store.store.close()
    match = re.match(r"[^:]*:(\d+):", holder)
    assert match, holder
    return int(match[1])


def test_preview_and_send_now(vhost_d: Vhost, tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        config = digest_config(tmp_path, smtp, vhost_d)
        send(vhost_d, login(day(0, 2), "web-1"), login(day(0, 3), "web-2", "root"))
        assert run_digest(config, day(0, 1)).returncode == 0
        html = tmp_path / "digest.html"
        shown = run_digest(config, day(0, 4), "--preview", "--to", OPS, "--html", str(html))
        assert shown.returncode == 0, shown.stderr
        assert totals(shown.stdout)["events"] == "2"
        assert "root on web-2" in shown.stdout and "Activity per host" in html.read_text()
        assert smtp.messages == []  # a preview sends nothing
        now = run_digest(config, day(0, 4), "--send-now")
        assert now.returncode == 0, now.stderr
        early = smtp.wait_for(2)
        assert {m.message["X-Loginwatch-Digest"] for m in early} == {
            "20261126T060000Z-20261126T100000Z"
        }
        # The rest of the day is a window of its own, sent when the day ends.
        assert run_digest(config, day(1, 0.01)).returncode == 0
        rest = smtp.wait_for(4)[2:]
    assert {m.message["X-Loginwatch-Digest"] for m in rest} == {"20261126T100000Z-20261127T060000Z"}
    assert all(totals(text_part(m.message))["events"] == "0" for m in rest)


def test_send_now_without_a_scheduler_counts_what_waits_in_the_queue(
    vhost_d: Vhost, tmp_path: Path
) -> None:
    """No scheduler ran: --send-now must store the queued events before it closes the window."""
    with SmtpServer() as smtp:
        config = digest_config(tmp_path, smtp, vhost_d)
        send(vhost_d, login(day(0, 2), "web-1"), login(day(0, 3), "web-2", "root"))
        now = run_digest(config, day(0, 4), "--send-now")
        assert now.returncode == 0, now.stderr
        sent = {str(m.message["To"]): text_part(m.message) for m in smtp.wait_for(2)}
    assert totals(sent[OPS])["events"] == "2"


def test_once_drains_a_backlog_larger_than_the_prefetch(vhost_d: Vhost, tmp_path: Path) -> None:
    """1,200 queued events (more than the 500 the broker hands over unacked): the first
    pump never holds all of them, so they arrive over several batches of one connection."""
    with SmtpServer() as smtp:
        config = digest_config(tmp_path, smtp, vhost_d)
        events = [login(day(0, 1), "web-1", f"u{n}") for n in range(1200)]
        publish_events(vhost_d.url(), events)
        done = run_digest(config, day(0, 4), timeout=90)
        assert done.returncode == 0, done.stderr
        shown = run_digest(config, day(0, 4), "--preview", "--to", OPS)
    assert totals(shown.stdout)["events"] == "1200", shown.stdout[:2000]
    left = counts(vhost_d.name, topology.DIGEST_QUEUE)
    assert (left.ready, left.unacked) == (0, 0)


def test_once_gives_up_while_the_broker_is_down(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = tmp_path / "loginwatch.toml"
    config.write_text(config_text(str(tmp_path / "lw.db"),
                                  amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/"))  # fmt: skip
    done = run_digest(config, day(0, 4), timeout=90)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "giving up: digests not sent" in errors[0], done.stderr
    assert f"127.0.0.1:{port}" in errors[0]
