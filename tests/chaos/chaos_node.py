"""A private, plain-TCP RabbitMQ node the chaos suite may stop, kill and restart at will.

The shared broker on :5672 is never touched (other helpers' tests run on it): this node has
its own name, port, data directory, Erlang cookie (HOME) and distribution port, listens on
loopback only, and keeps its data across a ``kill -9``, so a restart brings back every
durable queue and message, as a real server's restart would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.rabbit_node import SERVER, free_port

CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class ChaosNode:
    """``rabbitmq-server`` as ``lwchaos-<random>@localhost`` on ``127.0.0.1:self.port``."""

    def __init__(self) -> None:
        if not os.path.exists(SERVER):
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="loginwatch-chaos-"))
        self.name = f"lwchaos-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            # Four hosts' worth of disk: the default 50 MB limit is fine, but say it.
            "disk_free_limit.absolute = 50MB\n"
        )
        (self.dir / "rabbitmq-env.conf").write_text(
            'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface'
            ' {127,0,0,1}"\n'
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "advanced.config").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.dir),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
        }

    def start(self, timeout: float = 120) -> ChaosNode:
        """Start (or restart, on the same data) and wait until AMQP answers.

        Raises:
            RuntimeError: the node did not come up in time (with its log tail).
        """
        with open(self.dir / "startup.log", "ab") as log:
            self.proc = subprocess.Popen(
                [SERVER], env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self._await(timeout)
        return self

    def _await(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.listening():
            if (self.proc and self.proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"chaos node did not start: {self.log_tail()}")
            time.sleep(0.2)

    def ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CTL, "-q", "-n", self.name, *args], env=self._env(), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def stop_app(self) -> None:
        """``rabbitmqctl stop_app``; the port is closed when it returns.

        Raises:
            RuntimeError: rabbitmqctl failed, or the node still listens.
        """
        # Under a storm of publishers on two cores it has taken over a minute to return.
        done = self.ctl("stop_app", timeout=180)
        if done.returncode != 0 or self.listening():
            raise RuntimeError(f"stop_app: {done.returncode} {done.stderr.strip()[:200]}")

    def start_app(self, timeout: float = 120) -> None:
        """Raises:
        RuntimeError: rabbitmqctl failed or AMQP did not come back in time.
        """
        done = self.ctl("start_app", timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"start_app: {done.returncode} {done.stderr.strip()[:200]}")
        self._await(timeout)

    def kill9(self) -> None:
        """SIGKILL the whole node (the Erlang VM and its helpers): a crash, not a stop."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        deadline = time.monotonic() + 30
        while self.listening() and time.monotonic() < deadline:
            time.sleep(0.1)

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log_tail(self) -> str:
        logs = [self.dir / "startup.log", *sorted((self.dir / "log").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ChaosNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
