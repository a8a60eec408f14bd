"""Broker → worker → a real SMTP server: mails arrive once, faults park or dead-letter.

Every test runs the real ``loginwatch worker`` as a subprocess against the real
RabbitMQ (a vhost of its own) and an aiosmtpd server with fault hooks.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from consumer.alerts.lanes import HEADER_PROBE
from schemas import topology
from schemas.event import LoginEvent, encode
from tests.support.factories import event
from tests.support.services import AMQP_PORT, Vhost
from tests.support.smtp_server import DROP, Received, SmtpServer, free_port, text_part
from tests.support.worker_helpers import (
    FreezableProxy,
    WorkerProcess,
    depth,
    loginwatch,
    publish,
    running_worker,
    take_all,
    wait_depth,
    write_config,
)

pytestmark = pytest.mark.integration


def configured(vh: Vhost, tmp_path: Path, smtp_port: int, **kw: Any) -> Path:
    path = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp_port, **kw)
    result = loginwatch("setup", "--config", str(path))
    assert result.returncode == 0, result.stderr
    return path


def event_n(n: int, **fields: object) -> LoginEvent:
    """Distinct events (the factory derives the id from the fields)."""
    return event(tty=f"pts/{n}", **fields)


def test_a_login_becomes_one_mail_and_a_second_one_is_not_first_seen(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    config = configured(vh, tmp_path, smtp.port)
    first, second = event_n(1), event_n(2)
    metrics_port = free_port()
    listen = {"LOGINWATCH_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}
    with running_worker(config, tmp_path / "worker.log", listen) as worker:
        publish(vh, encode(first))
        assert len(smtp.wait_for(1)) == 1
        publish(vh, encode(second))
        mails = smtp.wait_for(2)
        worker.wait_for(rf"^INFO .*{second.id_hex} immediate ops@test.example: sent")
        # The settle (ack) follows the log line: scrape until it is counted too.
        settled = 'loginwatch_events_total{verdict="done"} 2.0'
        for _ in range(50):
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as page:
                exposition = page.read().decode()
            if settled in exposition:
                break
            time.sleep(0.1)
    assert 'loginwatch_mails_total{result="sent"} 2.0' in exposition
    assert settled in exposition
    assert len(mails) == 2
    one, two = (m.message for m in mails)
    assert one["To"] == "ops@test.example"
    assert "alice" in one["Subject"] and "web-01" in one["Subject"]
    assert first.id_hex in one["Message-ID"]
    text = text_part(one)
    assert "192.0.2.10" in text
    assert first.fingerprint in text
    assert "first" in text.lower()
    assert "first" not in text_part(two).lower()
    assert depth(vh, topology.ALERTS_QUEUE) == 0


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(("421 4.3.2 shutting down", "451 4.3.0 try again"), id="421-451-then-ok"),
        pytest.param((DROP,), id="dropped-mid-DATA-then-ok"),
    ],
)
def test_transient_faults_then_success_deliver_once(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path, faults: tuple[str, ...]
) -> None:
    config = configured(vh, tmp_path, smtp.port)
    smtp.fail_next(*faults)
    login_event = event_n(3)
    with running_worker(config, tmp_path / "worker.log") as worker:
        publish(vh, encode(login_event))
        worker.wait_for(rf"{login_event.id_hex} immediate ops@test.example: sent")
    assert len(smtp.messages) == 1
    assert smtp.attempts == len(faults) + 1
    assert depth(vh, topology.DEAD_QUEUE) == 0


def test_a_permanent_refusal_goes_to_the_dead_queue_with_the_reason(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    config = configured(vh, tmp_path, smtp.port)
    smtp.fail_next("550 5.7.1 relaying denied")
    login_event = event_n(4)
    with running_worker(config, tmp_path / "worker.log") as worker:
        publish(vh, encode(login_event))
        assert wait_depth(vh, topology.DEAD_QUEUE, 1) == 1
        worker.wait_for(f"{login_event.id_hex} dead-lettered")
    [dead] = take_all(vh, topology.DEAD_QUEUE)
    assert "550" in dead.headers[topology.HEADER_REASON]
    assert "relaying denied" in dead.headers[topology.HEADER_REASON]
    assert smtp.messages == []


def test_an_smtp_outage_parks_the_alert_until_the_server_is_back(vh: Vhost, tmp_path: Path) -> None:
    port = free_port()
    config = configured(vh, tmp_path, port)
    login_event = event_n(5)
    with running_worker(config, tmp_path / "worker.log") as worker:
        publish(vh, encode(login_event))
        worker.wait_for(rf"{login_event.id_hex} parked in loginwatch\.retry\.1s \(attempt 1 of 2\)")
        with SmtpServer(port=port) as smtp:
            [mail] = smtp.wait_for(1, timeout=30)
            worker.wait_for(rf"{login_event.id_hex} immediate ops@test.example: sent")
    assert login_event.id_hex in mail.message["Message-ID"]
    assert len(smtp.messages) == 1
    assert depth(vh, topology.DEAD_QUEUE) == 0


def test_an_outage_past_the_last_retry_ends_in_the_dead_queue(vh: Vhost, tmp_path: Path) -> None:
    config = configured(vh, tmp_path, free_port())
    login_event = event_n(6)
    with running_worker(config, tmp_path / "worker.log") as worker:
        publish(vh, encode(login_event))
        assert wait_depth(vh, topology.DEAD_QUEUE, 1, timeout=40) == 1
        worker.wait_for(f"{login_event.id_hex} dead-lettered: gave up after 2 parked attempt")
    [dead] = take_all(vh, topology.DEAD_QUEUE)
    assert dead.headers[topology.HEADER_REASON].startswith("gave up after 2 parked attempt(s)")


def test_kill_9_between_smtp_accept_and_ack_sends_no_second_mail(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    proxy = FreezableProxy(AMQP_PORT)
    config = configured(vh, tmp_path, smtp.port, broker_port=proxy.port)
    direct = write_config(tmp_path / "direct.toml", vh, smtp_port=smtp.port)
    # The moment the SMTP server accepts the mail, the worker's acks stop
    # reaching the broker: whatever it does next, its delivery stays unacked.
    accept = smtp.store

    def frozen_then_accept(received: Received) -> None:
        proxy.freeze()
        accept(received)

    smtp.store = frozen_then_accept  # type: ignore[method-assign]
    login_event = event_n(7)
    worker = WorkerProcess(config, tmp_path / "worker.log")
    try:
        worker.wait_for(r"consuming loginwatch\.alerts")
        publish(vh, encode(login_event))
        worker.wait_for(rf"{login_event.id_hex} immediate ops@test.example: sent")
    finally:
        worker.kill()
        proxy.close()
    # The broker got no ack: the alert comes back, to a new worker.
    with running_worker(direct, tmp_path / "worker2.log") as second:
        second.wait_for(rf"{login_event.id_hex} immediate ops@test.example: already sent")
        assert wait_depth(vh, topology.ALERTS_QUEUE, 0) == 0
    assert len(smtp.messages) == 1


def test_sigterm_finishes_the_delivery_in_flight_then_exits(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    config = configured(vh, tmp_path, smtp.port)
    arrived = threading.Event()
    accept = smtp.store

    def slow_accept(received: Received) -> None:
        arrived.set()
        time.sleep(1)  # the SIGTERM lands while the worker waits for this reply
        accept(received)

    smtp.store = slow_accept  # type: ignore[method-assign]
    login_event = event_n(8)
    worker = WorkerProcess(config, tmp_path / "worker.log")
    try:
        worker.wait_for(r"consuming loginwatch\.alerts")
        publish(vh, encode(login_event))
        assert arrived.wait(20)
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(20) == 0
    finally:
        if worker.proc.poll() is None:
            worker.kill()
    log = worker.text()
    assert f"{login_event.id_hex} immediate ops@test.example: sent" in log
    assert "SIGTERM: finishing the delivery in flight" in log
    assert len(smtp.messages) == 1
    # Nothing is left but, maybe, the worker's own lane probe, which pika gives back when
    # the consumer is cancelled with the probe not yet dispatched.
    left = [t for t in take_all(vh, topology.ALERTS_QUEUE) if HEADER_PROBE not in t.headers]
    assert not left, [(t.user_id, t.headers, t.body) for t in left]


def test_the_worker_reconnects_when_the_broker_goes_away(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    proxy = FreezableProxy(AMQP_PORT)
    config = configured(vh, tmp_path, smtp.port, broker_port=proxy.port)
    login_event = event_n(9)
    try:
        with running_worker(config, tmp_path / "worker.log") as worker:
            proxy.drop_all()
            worker.wait_for(r"broker: .*retry in 1s")
            worker.wait_for(r"consuming loginwatch\.alerts", count=2)
            publish(vh, encode(login_event))
            worker.wait_for(rf"{login_event.id_hex} immediate ops@test.example: sent")
    finally:
        proxy.close()
    assert len(smtp.messages) == 1
