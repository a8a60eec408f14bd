"""Run-time silences on real parts: two ``loginwatch worker`` processes sharing a PostgreSQL
store pick up a silence made with ``loginwatch silence add`` within their read interval
(no restart), and a worker whose silence read fails parks the event instead of deciding."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from consumer.store import open_store
from schemas import topology
from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import (
    central_sections,
    depth,
    loginwatch,
    publish,
    running_worker,
)

INTERVAL = 1.0  # [worker] silence_interval of these tests


def config_for(tmp_path: Path, vh: Vhost, smtp: SmtpServer, store_url: str) -> Path:
    text = central_sections(vh.url(), smtp.port, tmp_path, "1, 2")
    text = re.sub(r'\[store\]\nurl = "[^"]*"', f'[store]\nurl = "{store_url}"', text)
    text = text.replace("[worker]\n", f'[worker]\nsilence_interval = "{INTERVAL:g}s"\n')
    text += '\n[[route]]\nto = ["ops@test.example"]\nkinds = ["login"]\n'
    path = tmp_path / "loginwatch.toml"
    path.write_text(text, encoding="utf-8")
    assert loginwatch("setup", "--config", str(path)).returncode == 0
    return path


def login(port: int, host: str = "db-7") -> bytes:
    return encode(event(host=host, user="deploy", client_port=port))


def test_two_workers_honour_a_cli_silence_within_their_interval(
    vh: Vhost, tmp_path: Path, smtp: SmtpServer, pg_urls: Callable[[], str]
) -> None:
    config = config_for(tmp_path, vh, smtp, pg_urls())
    with (
        running_worker(config, tmp_path / "w1.log") as one,
        running_worker(config, tmp_path / "w2.log") as two,
    ):
        # Both workers read the silences (none yet) while deciding these.
        for port in range(40000, 40006):
            publish(vh, login(port))
        assert len(smtp.wait_for(6, timeout=30)) == 6
        assert "sent" in one.text() and "sent" in two.text(), "each worker decided some"
        made = loginwatch("silence", "add", "--config", str(config), "--hosts", "db-*",
                          "--for", "2h", "--comment", "CHG-42", "--author", "carol")  # fmt: skip
        assert made.returncode == 0, made.stderr
        silence_id = made.stdout.strip()
        created = time.monotonic()
        time.sleep(INTERVAL)  # every worker's last read is now older than its interval
        for port in range(41000, 41010):
            publish(vh, login(port))
        one.wait_for(r"silenced until .* by \"carol\" \(silence ", count=1, timeout=30)
        two.wait_for(r"silenced until .* by \"carol\" \(silence ", count=1, timeout=30)
        for worker in (one, two):
            worker.wait_for(r"silenced", timeout=30)
        total = sum(len(re.findall(r" silenced ops@test\.example: ", w.text())) for w in (one, two))
        deadline = time.monotonic() + 30
        while total < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
            total = sum(len(re.findall(r" silenced ops@test\.example: ", w.text()))
                        for w in (one, two))  # fmt: skip
        # Another host is not silenced: it still alerts.
        publish(vh, login(42000, host="web-1"))
        mails = smtp.wait_for(7, timeout=30)
    assert total == 10, (one.text(), two.text())
    assert len(mails) == 7 and "web-1" in str(mails[-1].message["Subject"])
    assert time.monotonic() - created < 60
    listed = loginwatch("silence", "list", "--config", str(config))
    assert silence_id in listed.stdout and "carol" in listed.stdout and "CHG-42" in listed.stdout
    assert "hosts=db-*" in listed.stdout
    gone = loginwatch("silence", "expire", "--config", str(config), silence_id)
    assert gone.returncode == 0 and f"silence {silence_id} expired" in gone.stdout
    again = loginwatch("silence", "expire", "--config", str(config), silence_id)
    assert again.returncode == 1 and "ended already" in again.stderr


def test_a_failed_silence_read_parks_the_event_and_it_is_decided_once_the_store_answers(
    vh: Vhost, tmp_path: Path, smtp: SmtpServer, pg_urls: Callable[[], str]
) -> None:
    url = pg_urls()
    config = config_for(tmp_path, vh, smtp, url)
    with running_worker(config, tmp_path / "w.log") as worker:
        publish(vh, login(43000))
        assert len(smtp.wait_for(1, timeout=30)) == 1
        with open_store(url) as store:
            store.db.execute("ALTER TABLE silence RENAME TO silence_away")
            time.sleep(INTERVAL)
            publish(vh, login(43001))
            worker.wait_for(r"cannot read the silences, nothing decided without them", timeout=30)
            assert len(smtp.messages) == 1, "nothing was decided without the silences"
            store.db.execute("ALTER TABLE silence_away RENAME TO silence")
        mails = smtp.wait_for(2, timeout=30)
    assert len(mails) == 2, worker.text()
    assert depth(vh, topology.DEAD_QUEUE) == 0
