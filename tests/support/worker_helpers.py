"""Real-broker helpers for the worker's tests, the demo and the benchmark.

A fresh vhost per test (cheap: three rabbitmqctl calls), a config file pointing
at it, the ``loginwatch`` command run as a subprocess, and a worker subprocess
whose log lines a test can wait for.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika

from schemas import topology
from tests.support.services import Vhost

ROOT = Path(__file__).resolve().parents[2]


def central_sections(url: str, smtp_port: int, store_dir: Path, retry_delays: str) -> str:
    """The central part of a test config: broker, a local SMTP server, a SQLite store
    in ``store_dir``, no DNS, the given retry delays (seconds, comma-separated)."""
    return f"""
[broker]
url = "{url}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "loginwatch@test.example"
timeout = 5

[store]
url = "{store_dir / "store.db"}"

[enrich]
dns = false

[worker]
retry_delays = [{retry_delays}]
"""


def store_only_config(store: Path) -> str:
    """A config whose only concern is the SQLite store at ``store`` (and its one route)."""
    return f"""[store]
url = "{store}"
[smtp]
host = "127.0.0.1"
from = "loginwatch@example.org"
[[route]]
to = ["ops@example.com"]
mode = "digest"
"""


def write_config(
    path: Path, vhost: Vhost, *, smtp_port: int = 2525, extra: str = "", broker_port: int = 0
) -> Path:
    """A config for ``vhost``: short retry delays, a SQLite store next to it, one route."""
    url = vhost.url(port=broker_port) if broker_port else vhost.url()
    path.write_text(
        central_sections(url, smtp_port, path.parent, "1, 2")
        + f"""
[[route]]
to = ["ops@test.example"]
mode = "immediate"
{extra}
""",
        encoding="utf-8",
    )
    return path


def loginwatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``loginwatch`` command line as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def connect(vhost: Vhost) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(vhost.url()))


def publish(
    vhost: Vhost,
    body: bytes,
    *,
    routing_key: str = "login",
    user_id: str | None = "guest",
    headers: Mapping[str, Any] | None = None,
    message_id: str | None = None,
    timestamp: int | None = None,
) -> None:
    """Publish to the events exchange as a single-machine install does: persistent,
    confirmed, as the central user (``guest``, which may speak for any host)."""
    with connect(vhost) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            topology.EXCHANGE,
            routing_key,
            body,
            pika.BasicProperties(
                delivery_mode=2,
                user_id=user_id,
                headers=dict(headers or {}),
                message_id=message_id,
                timestamp=timestamp,
                content_type=topology.CONTENT_TYPE,
            ),
            mandatory=True,
        )


def depth(vhost: Vhost, queue: str) -> int:
    with connect(vhost) as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)


def alerts_depth(vhost: Vhost, lanes: int = topology.DEFAULT_LANES) -> int:
    """Ready messages in the shared alerts queue and every lane together."""
    with connect(vhost) as connection:
        channel = connection.channel()
        return sum(int(channel.queue_declare(q, passive=True).method.message_count)
                   for q in topology.alert_queues(lanes))  # fmt: skip


def wait_depth(vhost: Vhost, queue: str, count: int, timeout: float = 30) -> int:
    """Poll until ``queue`` holds ``count`` ready messages; returns the last depth seen."""
    deadline = time.monotonic() + timeout
    seen = depth(vhost, queue)
    while seen != count and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = depth(vhost, queue)
    return seen


@dataclass(frozen=True)
class Taken:
    body: bytes
    headers: dict[str, Any]
    user_id: str | None


def take_all(where: Vhost | str, queue: str) -> list[Taken]:
    """Remove and return every message of ``queue`` (in a vhost, or at an amqp:// URL)."""
    taken: list[Taken] = []
    url = where if isinstance(where, str) else where.url()
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append(Taken(body, dict(props.headers or {}), props.user_id))


class WorkerProcess:
    """``loginwatch worker`` as a subprocess, its log in a file a test can wait on."""

    def __init__(self, config: Path, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "worker", "--config", str(config)],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30, count: int = 1) -> str:
        """Wait until ``pattern`` (a regex) matched ``count`` log lines; returns the log.

        Raises:
            AssertionError: it did not, or the worker died (with its log).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if len(re.findall(pattern, text, re.M)) >= count:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"worker log never showed {pattern!r} x{count}:\n{self.text()}")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._handle.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._handle.close()


@contextmanager
def running_worker(
    config: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[WorkerProcess]:
    """A consuming worker; stopped (or killed) when the block ends."""
    worker = WorkerProcess(config, log, env)
    try:
        worker.wait_for(r"consuming loginwatch\.alerts")
        yield worker
    finally:
        if worker.proc.poll() is None:
            try:
                worker.stop()
            except subprocess.TimeoutExpired:
                worker.kill()


class FreezableProxy:
    """A TCP proxy to the broker whose client→broker direction can be cut at will.

    ``freeze()`` makes it swallow everything the client sends from then on (its
    acks never reach RabbitMQ); when the client dies, the proxy closes its broker
    side, and the broker requeues what was unacked. Pure sockets, no fakes: the
    worker talks real AMQP to the real broker through it.
    """

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        port: int = 0,
        listen_host: str = "127.0.0.1",
    ) -> None:
        """``port``: where to listen (0: any free port, ``self.port``), on ``listen_host``."""
        self.target = (target_host, target_port)
        self.frozen = threading.Event()
        self._server = socket.create_server((listen_host, port))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def freeze(self) -> None:
        self.frozen.set()

    def drop_all(self) -> None:
        """Cut every current connection, as a broker restart would (new ones still work)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src: Any, dst: Any, up: bool) -> None:
        try:
            while data := src.recv(65536):
                if not (up and self.frozen.is_set()):
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):  # shutdown wakes the other pump's recv
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
