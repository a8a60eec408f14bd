"""Observability never gates alerting, and tells only the service's own figures (issue 17).

A local user who takes the metrics port first used to keep every worker from starting
(it exited; under Restart=on-failure it failed every 5 s) and could serve fake figures to
``loginwatch status``. A slowloris on the metrics port cost the worker a thread per
connection. A host whose clock says 1970 moved the latency histograms. Real worker, real
broker, real SMTP server; the squatter runs as ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.commands.status import oldest_unacked
from consumer.core import metrics, metrics_server
from schemas import topology
from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer, free_port
from tests.support.worker_helpers import loginwatch, publish, running_worker, write_config

# What a squatter would like status to show: an alert held for two hours.
FAKE = 'loginwatch_oldest_unacked_seconds{queue="loginwatch.alerts"} 7200\n'
SQUATTER = """
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
body = sys.argv[2].encode()
while True:
    conn, _ = server.accept()
    conn.recv(4096)
    conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
    conn.close()
"""


@contextlib.contextmanager
def squatter(port: int) -> Iterator[subprocess.Popen[str]]:
    """A process of ``nobody`` on 127.0.0.1:``port``, answering every request with FAKE."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the squatter as nobody")
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-c", SQUATTER, str(port), FAKE], stdout=subprocess.PIPE,
        text=True, user="nobody", group="nogroup", extra_groups=[],
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def runtime_dirs(tmp_path: Path, instance: str) -> tuple[Path, Path]:
    """``[metrics] runtime_dir`` and one unit's directory in it, as systemd makes them
    (root's, 0755; the instance's 0750)."""
    base = tmp_path / "run"
    base.mkdir(mode=0o755)
    own = base / instance
    own.mkdir(mode=0o750)
    return base, own


def status_rows(config: Path) -> tuple[dict[str, list[str]], str]:
    shown = loginwatch("status", "--config", str(config))
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()
            if line.startswith("loginwatch.")}  # fmt: skip
    return rows, shown.stdout + shown.stderr


def test_a_squatted_metrics_port_leaves_the_worker_mailing(vh: Vhost, tmp_path: Path) -> None:
    port = free_port()
    base, own = runtime_dirs(tmp_path, "worker-1")
    with squatter(port), SmtpServer() as smtp:
        extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\nruntime_dir = "{base}"\n'
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port, extra=extra)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        env = {metrics_server.RUNTIME_ENV: str(own)}
        with running_worker(config, tmp_path / "worker.log", env) as worker:
            publish(vh, encode(event(user="root", time=datetime.now(UTC))))
            [mail] = smtp.wait_for(1)
            rows, shown = status_rows(config)
            log = worker.text()
    assert "root" in mail.message["Subject"]
    warned = r"WARNING loginwatch\.metrics: metrics: \$\.metrics\.listen .*: cannot listen on"
    assert re.search(warned + r" 127\.0\.0\.1:\d+: Address already in use.*alerting goes on", log)
    # status asked the worker's own socket (its oldest unacked: none held, 0 s), never
    # the squatter's port, which claims two hours.
    assert rows[topology.ALERTS_QUEUE][2:4] == ["1", "0s"], shown
    assert "2.0h" not in shown
    assert (own / "metrics.sock").is_socket()


def test_status_believes_no_socket_another_user_could_have_made(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to make a directory of nobody's")
    base, own = runtime_dirs(tmp_path, "digest")
    server = metrics_server.serve_unix(str(own))
    evil = base / "worker-9"
    evil.mkdir()
    os.chown(evil, 65534, 65534)  # nobody's: a squatter made it
    fake = socket.socket(socket.AF_UNIX)
    fake.bind(str(evil / "metrics.sock"))
    loose = base / "worker-8"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)  # anyone may swap the socket in it
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(loose / "metrics.sock"))
    metrics.holding(topology.DIGEST_QUEUE, 1, 42.0)
    try:
        oldest, notes = oldest_unacked(str(base))
    finally:
        server.close()
        fake.close()
        other.close()
    assert oldest[topology.DIGEST_QUEUE] == 42.0
    assert any("worker-9/metrics.sock" in n and "owned by uid 65534" in n for n in notes), notes
    assert any("worker-8 is writable by group or others" in n for n in notes), notes


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_slowloris_on_the_metrics_port_costs_no_thread_and_no_mail(
    vh: Vhost, tmp_path: Path
) -> None:
    port = free_port()
    with SmtpServer() as smtp:
        extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port, extra=extra)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log") as worker:
            before = threads(worker.proc.pid)
            slow = []
            for _ in range(300):  # each sends a byte of a request, then nothing
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                conn.sendall(b"G")
                slow.append(conn)
            publish(vh, encode(event(user="root", time=datetime.now(UTC))))
            began = time.monotonic()
            smtp.wait_for(1)
            mailed_s = time.monotonic() - began
            during = threads(worker.proc.pid)
            for conn in slow:
                conn.close()
            time.sleep(metrics_server.REQUEST_S + 0.5)  # the handlers give up on the last ones
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as got:
                after = got.read().decode()
    print(f"threads before {before}, during 300 slow clients {during}; mailed in {mailed_s:.2f}s")
    assert during <= before  # the server's threads were all there before
    assert 'loginwatch_mails_total{result="sent"} 1.0' in after


def test_a_host_clock_of_1970_moves_no_latency_figure(vh: Vhost, tmp_path: Path) -> None:
    port = free_port()
    with SmtpServer() as smtp:
        extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port, extra=extra)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"):
            then = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
            publish(vh, encode(event(user="root", time=then)), timestamp=1)
            smtp.wait_for(1)
            time.sleep(0.5)  # the ack follows the mail
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as got:
                text = got.read().decode()
    sums = dict(re.findall(r"^(loginwatch_\w+_sum)(?:\{[^}]*\})? (\S+)$", text, re.M))
    counts = re.findall(r'^loginwatch_intake_lag_seconds_count\{queue="loginwatch.alerts"\} (\S+)$',
                        text, re.M)  # fmt: skip
    assert counts == ["1.0"]
    # Arrival to SMTP accepted, arrival to ack: seconds at most, not 56 years.
    assert float(sums["loginwatch_delivery_latency_seconds_sum"]) < 30
    assert float(sums["loginwatch_intake_lag_seconds_sum"]) < 30
