"""A private, plain-TCP RabbitMQ node the chaos suite may stop, kill and restart at will.

The shared broker on :5672 is never touched (other helpers' tests run on it): this node has
its own name, port, data directory, Erlang cookie (HOME) and distribution port, listens on
loopback only, and keeps its data across a ``kill -9``, so a restart brings back every
durable queue and message, as a real server's restart would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.private_node import PrivateNode
from tests.support.rabbit_node import SERVER, free_port


class ChaosNode(PrivateNode):
    """``rabbitmq-server`` as ``lwchaos-<random>@localhost`` on ``127.0.0.1:self.port``."""

    def __init__(self) -> None:
        if not os.path.exists(SERVER):
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        self.port = free_port()
        super().__init__(
            Path(tempfile.mkdtemp(prefix="loginwatch-chaos-")),
            f"lwchaos-{uuid.uuid4().hex[:8]}@localhost",
            self.port,
        )
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            # Four hosts' worth of disk: the default 50 MB limit is fine, but say it.
            "disk_free_limit.absolute = 50MB\n"
        )

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 120) -> ChaosNode:
        """Start (or restart, on the same data) and wait until AMQP answers.

        Raises:
            RuntimeError: the node did not come up in time (with its log tail).
        """
        self.launch()
        self.wait(timeout, "chaos node")
        return self

    def ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return self.run_ctl(*args, timeout=timeout)

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
        self.wait(timeout, "chaos node")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ChaosNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
