"""Broker → the real worker → mail and receivers: each real HTTP server of ours gets a
notice once, faults park or dead-letter, and no secret shows anywhere.

Every test runs ``loginwatch worker`` as a subprocess against the real RabbitMQ (a vhost of
its own), an aiosmtpd server, and HTTP servers standing in for the receivers' APIs
(tests/support/receiver_server.py), which check each request as the service would.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from schemas import topology
from schemas.event import LoginEvent, encode
from tests.support.factories import event
from tests.support.receiver_server import KINDS, MAIL, ReceiverServer, receivers_config
from tests.support.services import AMQP_PORT, Vhost
from tests.support.smtp_server import SmtpServer, free_port
from tests.support.worker_helpers import (
    FreezableProxy,
    WorkerProcess,
    depth,
    loginwatch,
    publish,
    running_worker,
    take_all,
    wait_depth,
)

pytestmark = pytest.mark.integration


def configured(path: Path, vh: Vhost, smtp_port: int, servers: dict[str, ReceiverServer],
               **kw: object) -> Path:  # fmt: skip
    config = receivers_config(path, vh.url(), smtp_port, servers, **kw)  # type: ignore[arg-type]
    done = loginwatch("setup", "--config", str(config))
    assert done.returncode == 0, done.stderr
    return config


def event_n(n: int) -> LoginEvent:
    return event(tty=f"pts/{n}")


def scrape(port: int, wanted: str, tries: int = 50) -> str:
    for _ in range(tries):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as page:
            text: str = page.read().decode()
        if wanted in text:
            return text
        time.sleep(0.1)
    return text


def test_one_event_routed_to_mail_and_two_receivers_arrives_once_at_each(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    login = event_n(1)
    metrics = free_port()
    with ReceiverServer("webhook") as hook, ReceiverServer("slack") as chat:
        config = configured(tmp_path / "lw.toml", vh, smtp.port, {"hook": hook, "chat": chat})
        env = {"LOGINWATCH_METRICS_LISTEN": f"127.0.0.1:{metrics}"}
        with running_worker(config, tmp_path / "worker.log", env) as worker:
            publish(vh, encode(login))
            for target in (MAIL, "receiver:hook", "receiver:chat"):
                worker.wait_for(rf"{login.id_hex} immediate {target}: sent")
            # The same event again (a redelivery, a second copy): nothing goes out twice.
            publish(vh, encode(login))
            worker.wait_for(rf"{login.id_hex} immediate \S+: already sent", count=3)
            exposition = scrape(
                metrics, 'loginwatch_deliveries_total{receiver="chat",result="sent"}'
            )
        [mail] = smtp.messages
        [signed] = hook.posts
        [posted] = chat.posts
    assert hook.problems == [] and chat.problems == []
    assert mail.message["To"] == MAIL
    body = signed.json
    assert (body["type"], body["target"]) == ("loginwatch.alert", "receiver:hook")
    assert body["data"]["event"]["id"] == login.id_hex
    assert body["data"]["event"]["user"] == "alice"
    assert body["id"] == signed.headers["webhook-id"]
    assert signed.headers["webhook-signature"].count("v1,") == 2  # both keys sign
    assert "`alice`" in posted.json["text"]
    for name in ("hook", "chat", "mail"):
        assert f'loginwatch_deliveries_total{{receiver="{name}",result="sent"}} 1.0' in exposition
        assert f'loginwatch_delivery_seconds_count{{receiver="{name}"}} 1.0' in exposition
    assert depth(vh, topology.DEAD_QUEUE) == 0


def test_a_429_storm_is_retried_then_delivered_once(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    login = event_n(2)
    with ReceiverServer("telegram") as tg, ReceiverServer("discord") as dc:
        # Telegram says how long in parameters.retry_after, Discord in Retry-After and its
        # JSON: three answers each exhaust the worker's short retries, which parks the
        # alert; the retry queue brings it back to three more, then it goes through.
        tg.answer(*[429] * 5, retry_after=1)
        dc.answer(*[429] * 4, retry_after=1)
        config = configured(tmp_path / "lw.toml", vh, smtp.port, {"tg": tg, "dc": dc},
                            to=["receiver:tg", "receiver:dc"], retry_delays="1, 2, 4")  # fmt: skip
        with running_worker(config, tmp_path / "worker.log") as worker:
            publish(vh, encode(login))
            worker.wait_for(rf"{login.id_hex} parked in loginwatch\.retry\.1s", timeout=60)
            worker.wait_for(rf"{login.id_hex} immediate receiver:tg: sent", timeout=60)
            worker.wait_for(rf"{login.id_hex} immediate receiver:dc: sent", timeout=60)
            log = worker.text()
    assert (len(tg.posts), tg.attempts) == (1, 6)
    assert (len(dc.posts), dc.attempts) == (1, 5)
    assert "telegram: 429 Too Many Requests, retry after 1 s" in log
    assert tg.problems == dc.problems == []
    assert depth(vh, topology.DEAD_QUEUE) == 0


def test_a_400_goes_dead_with_the_reason_and_no_secret(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    login = event_n(3)
    with ReceiverServer("discord") as dc:
        dc.answer(400)
        config = configured(tmp_path / "lw.toml", vh, smtp.port, {"dc": dc})
        with running_worker(config, tmp_path / "worker.log") as worker:
            publish(vh, encode(login))
            assert wait_depth(vh, topology.DEAD_QUEUE, 1) == 1
            worker.wait_for(f"{login.id_hex} dead-lettered")
            log = worker.text()
    [dead] = take_all(vh, topology.DEAD_QUEUE)
    reason = str(dead.headers[topology.HEADER_REASON])
    assert "receiver:dc: discord: 400 Bad Request" in reason
    assert len(smtp.messages) == 1  # the mail to the same route went out, once
    [secret] = dc.secrets()
    assert secret not in reason and secret not in log and secret not in str(dead.headers)


def _stored(store: Path, key: str) -> bool:
    with sqlite3.connect(store) as db:
        return bool(db.execute("SELECT 1 FROM delivery_log WHERE key = ?", (key,)).fetchall())


@pytest.mark.parametrize("when", ["as-the-answer-leaves", "after-the-sent-line"])
def test_kill_9_after_the_receiver_answered_before_the_ack(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path, when: str
) -> None:
    """The receiver answered 200; the worker is killed before its ack reaches the broker.
    Whether the sent log's record had committed decides: committed, the redelivery posts
    nothing; not committed, it posts once more with the same webhook-id (the documented
    window). The test reads the store and says which case it hit."""
    login = event_n(4)
    proxy = FreezableProxy(AMQP_PORT)
    with ReceiverServer("webhook") as hook:
        config = receivers_config(tmp_path / "lw.toml", vh.url(port=proxy.port), smtp.port,
                                  {"hook": hook}, to=["receiver:hook"])  # fmt: skip
        direct = receivers_config(tmp_path / "direct.toml", vh.url(), smtp.port, {"hook": hook},
                                  to=["receiver:hook"])  # fmt: skip
        assert loginwatch("setup", "--config", str(direct)).returncode == 0
        hook.on_post = lambda _post: proxy.freeze()  # from now on, no ack reaches RabbitMQ
        worker = WorkerProcess(config, tmp_path / "worker.log")
        answered = threading.Event()

        def kill_now(_post: object) -> None:
            worker.proc.kill()
            answered.set()

        if when == "as-the-answer-leaves":
            hook.on_answered = kill_now
        try:
            worker.wait_for(r"consuming loginwatch\.alerts")
            publish(vh, encode(login))
            if when == "as-the-answer-leaves":
                assert answered.wait(30)
            else:
                worker.wait_for(rf"{login.id_hex} immediate receiver:hook: sent")
        finally:
            worker.kill()
            proxy.close()
        committed = _stored(tmp_path / "store.db", f"alert:{login.id_hex}:receiver:hook")
        print(f"kill -9 {when}: the record had {'' if committed else 'not '}committed")
        with running_worker(direct, tmp_path / "worker2.log") as second:
            if committed:
                second.wait_for(rf"{login.id_hex} immediate receiver:hook: already sent")
            else:
                second.wait_for(rf"{login.id_hex} immediate receiver:hook: sent")
            assert wait_depth(vh, topology.ALERTS_QUEUE, 0) == 0
        posts = list(hook.posts)
    if when == "after-the-sent-line":
        assert committed  # the line is written after the record
    assert len(posts) == (1 if committed else 2)
    assert len({p.headers["webhook-id"] for p in posts}) == 1  # a resend folds by its id
    assert hook.problems == []


def test_no_secret_shows_in_logs_dead_letters_or_commands(
    vh: Vhost, smtp: SmtpServer, tmp_path: Path
) -> None:
    login = event_n(5)
    servers = {kind: ReceiverServer(kind).start() for kind in KINDS}
    try:
        for kind, server in servers.items():
            # Refused every time: apprise only ever says False (parked, then dead).
            server.answer(*[400 if kind != "apprise" else 500] * 10)
        config = configured(tmp_path / "lw.toml", vh, smtp.port, servers, retry_delays="1")
        with running_worker(config, tmp_path / "worker.log", {"PYTHONDEVMODE": "1"}) as worker:
            publish(vh, encode(login))
            assert wait_depth(vh, topology.DEAD_QUEUE, 1, timeout=60) == 1
            worker.wait_for(f"{login.id_hex} dead-lettered")
        dead = take_all(vh, topology.DEAD_QUEUE)
        outputs = [worker.text(), repr([(d.headers, d.body) for d in dead])]
        checked = loginwatch("check-config", "--config", str(config))
        assert checked.returncode == 0, checked.stderr
        outputs += [checked.stdout, checked.stderr]
        for kind in KINDS:
            sent = loginwatch(
                "-v", "send-test", "--config", str(config), "--to", f"receiver:{kind}"
            )
            dry = loginwatch("send-test", "--config", str(config), "--to", f"receiver:{kind}",
                             "--dry-run")  # fmt: skip
            outputs += [sent.stdout, sent.stderr, dry.stdout, dry.stderr]
        reason = str(dead[0].headers[topology.HEADER_REASON])
        assert reason.startswith(
            "gave up after 1 parked attempt(s): receiver:apprise: apprise: notify() failed"
        )
        assert "receiver:slack: slack: 400 Bad Request" in reason
        everything = "\n".join(outputs)
        leaks = [(kind, secret) for kind, server in servers.items()
                 for secret in server.secrets() if secret in everything]  # fmt: skip
        assert leaks == []
        assert "receivers" not in checked.stderr and "receiver " in checked.stdout
    finally:
        for server in servers.values():
            server.stop()
