"""Heartbeats and quiet hosts through the real worker, broker and SMTP server: a heartbeat
updates the hosts table and mails nobody (a catch-all route included); a host silent past
[hosts] quiet_after raises one host-quiet alert, "stopped" after a goodbye, "gone"
without; `loginwatch host retire` ends the watch."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import wire
from schemas.records import Heartbeat
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import central_sections, loginwatch, publish, running_worker

pytestmark = pytest.mark.integration

ROUTES = """
[hosts]
quiet_after = "5m"
check_every = "1s"

[[route]]
to = ["ops@test.example"]
"""


def beat(host: str, *, goodbye: bool = False, n: int = 0) -> bytes:
    return wire.encode(Heartbeat(
        id=hashlib.sha256(f"{host}{goodbye}{n}".encode()).digest()[:16],
        time=datetime.now(UTC), host=host, hook_version="0.9.0", spool_depth=3, dropped=0,
        addresses=(bytes([10, 0, 0, 1]),), goodbye=goodbye,
        why="stop" if goodbye else ""))  # fmt: skip


def rows(store: Path) -> dict[str, tuple[object, ...]]:
    with sqlite3.connect(store) as db:
        found = db.execute("SELECT name, heartbeat_at, spool_depth, goodbye_at, retired_at"
                           " FROM hosts").fetchall()  # fmt: skip
    return {str(r[0]): r[1:] for r in found}


def wait_rows(store: Path, names: set[str]) -> dict[str, tuple[object, ...]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if store.exists() and names <= set(found := rows(store)):
            return found
        time.sleep(0.2)
    raise AssertionError(f"no rows for {names}")


def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.2)


def age(store: Path, seconds: float) -> None:
    """Make every host's last report ``seconds`` older (a silence, without the wait)."""
    with sqlite3.connect(store) as db:
        db.execute("UPDATE hosts SET last_event = last_event - ?,"
                   " heartbeat_at = heartbeat_at - ?", (seconds, seconds))  # fmt: skip


def test_heartbeats_never_route_and_a_quiet_host_alerts_once(vh: Vhost, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    config = tmp_path / "central.toml"
    with SmtpServer() as smtp:
        config.write_text(central_sections(vh.url(), smtp.port, tmp_path, "1, 2") + ROUTES)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"):
            publish(vh, beat("web-3"), routing_key="guest.heartbeat")
            publish(vh, beat("web-4", goodbye=True), routing_key="guest.heartbeat")
            publish(vh, beat("web-5"), routing_key="guest.heartbeat")
            found = wait_rows(store, {"web-3", "web-4", "web-5"})
            assert found["web-3"][1] == 3 and found["web-3"][2] is None  # spool depth, no bye
            assert found["web-4"][2] is not None  # it said goodbye
            retired = loginwatch("host", "retire", "web-5", "--config", str(config))
            assert retired.returncode == 0, retired.stderr
            assert "retired host web-5" in retired.stdout
            assert "loginwatch host remove web-5 deletes it" in retired.stdout
            time.sleep(1.5)
            assert smtp.messages == []  # a heartbeat is no login: no route mails it
            age(store, 3 * 3600)
            mails = smtp.wait_for(2, timeout=30)
            time.sleep(3)  # more checks: still one alert per host and silence
            assert len(smtp.messages) == 2
            status = loginwatch("status", "--config", str(config)).stdout
            assert "hosts that stopped reporting (no event, no heartbeat for 5m):" in status
            assert re.search(r"web-3 +gone since", status)
            assert re.search(r"web-4 +stopped since", status)
            assert "web-5" not in status.split("stopped reporting")[1]
            # web-3 reports again, then goes quiet again: a new silence, a new alert.
            publish(vh, beat("web-3", n=1), routing_key="guest.heartbeat")
            wait_until(lambda: float(str(rows(store)["web-3"][0])) > time.time() - 60)
            age(store, 3 * 3600)
            smtp.wait_for(3, timeout=30)
    subjects = sorted(str(m.message["Subject"]).strip() for m in mails)
    assert subjects[0].startswith("web-3 has not reported since ")
    assert subjects[0].endswith(": the hook may be disabled or the host down")
    assert subjects[1].startswith("web-4 was stopped and has not reported since ")
    assert not any("web-5" in s for s in subjects)  # retired
    by_subject = {str(m.message["Subject"]).strip(): m.message for m in mails}
    text = by_subject[subjects[1]].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "said goodbye (stop)" in text
    assert "loginwatch host retire web-4" in text


def test_a_real_flush_heartbeat_and_goodbye_reach_the_hosts_table(
    vh: Vhost, tmp_path: Path
) -> None:
    """The host side as installed runs it: ``loginwatch-hook flush`` sends a heartbeat,
    ``loginwatch-hook goodbye`` a goodbye; the worker keeps both in the hosts table, and a
    silence after the goodbye reads "stopped"."""
    import subprocess

    from tests.support.hookrun import HOOK
    from tests.support.hookrun import write_config as host_config

    store = tmp_path / "store.db"
    config = tmp_path / "central.toml"
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    host = host_config(host_dir, vh.url(), host="web-7", host_keys=('wtmp = ""', 'wtmpdb = ""'))
    with SmtpServer() as smtp:
        config.write_text(central_sections(vh.url(), smtp.port, tmp_path, "1, 2") + ROUTES)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log") as worker:
            done = subprocess.run([HOOK, "--config", str(host), "flush"], capture_output=True,
                                  text=True, timeout=60, check=False)  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            found = wait_rows(store, {"web-7"})
            assert found["web-7"][0] is not None and found["web-7"][2] is None  # no goodbye
            goodbye = [HOOK, "--config", str(host), "goodbye", "--why", "stop"]
            bye = subprocess.run(goodbye, capture_output=True, text=True, timeout=60, check=False)
            assert bye.returncode == 0, bye.stdout + bye.stderr
            worker.wait_for("heartbeat from 'web-7'.*goodbye", timeout=30)
            age(store, 3 * 3600)
            [mail] = smtp.wait_for(1, timeout=30)
    assert str(mail.message["Subject"]).strip().startswith("web-7 was stopped and has not")
    assert smtp.messages == [mail]  # the heartbeats themselves mailed nobody


def test_a_real_host_whose_flush_is_killed_goes_gone_not_stopped(vh: Vhost, tmp_path: Path) -> None:
    """A real quiet host: its flush timer runs (``loginwatch-hook flush`` every second, as
    the timer would run it), then the timer and the flush it was running are ``kill -9``-ed,
    so no goodbye is said; once the silence is older than quiet_after, the alert says the
    host is gone (the hook may be disabled or the host down), never "stopped"."""
    import os
    import signal
    import subprocess

    from tests.support.hookrun import HOOK
    from tests.support.hookrun import write_config as host_config

    store = tmp_path / "store.db"
    config = tmp_path / "central.toml"
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    host = host_config(host_dir, vh.url(), host="web-8", host_keys=('wtmp = ""', 'wtmpdb = ""'))
    timer = [sys.executable, "-c", FLUSH_TIMER, HOOK, str(host)]
    with SmtpServer() as smtp:
        config.write_text(central_sections(vh.url(), smtp.port, tmp_path, "1, 2") + ROUTES)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"):
            flushes = subprocess.Popen(timer, start_new_session=True)
            try:
                found = wait_rows(store, {"web-8"})
                assert found["web-8"][0] is not None, "the flush timer's heartbeat"
            finally:
                os.killpg(flushes.pid, signal.SIGKILL)  # the timer and any flush it runs
                flushes.wait(10)
            assert rows(store)["web-8"][2] is None  # killed: no goodbye
            age(store, 3 * 3600)
            [mail] = smtp.wait_for(1, timeout=30)
    subject = str(mail.message["Subject"]).strip()
    assert subject.startswith("web-8 has not reported since "), subject
    assert subject.endswith(": the hook may be disabled or the host down")


# What the flush timer does, without systemd (our test machines have none as PID 1).
FLUSH_TIMER = """
import subprocess, sys, time
while True:
    subprocess.run([sys.argv[1], "--config", sys.argv[2], "flush"], timeout=60, check=False)
    time.sleep(1)
"""
