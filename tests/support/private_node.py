"""What every private ``rabbitmq-server`` of the tests shares (the chaos node, the cluster's
nodes, the test network's node): its own name, data directory, Erlang cookie (HOME) and
distribution port on loopback, so the shared broker on :5672 is never touched; started in a
session of its own and stopped by that pid; its data kept across a ``kill -9``, so a restart
brings back every durable queue and message, as a real server's restart would.

A subclass writes ``rabbitmq.conf`` (its listeners) and says which loopback port answers
when AMQP is up (``probe_port``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from schemas.topology import HASH_PLUGIN
from tests.support.rabbit_node import SERVER, free_port

CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class PrivateNode:
    """``rabbitmq-server`` as ``name`` with its files in ``directory``."""

    def __init__(self, directory: Path, name: str, probe_port: int) -> None:
        self.dir = directory
        self.name = name
        self.probe_port = probe_port
        self.dist_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (directory / "rabbitmq-env.conf").write_text(
            'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface'
            ' {127,0,0,1}"\n'
        )
        # The plugin the alert lanes need (schemas/topology.py), as every broker has it.
        (directory / "enabled_plugins").write_text(f"[{HASH_PLUGIN}].\n")
        (directory / "advanced.config").write_text("[].\n")

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.dir),  # the node's Erlang cookie
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

    def launch(self) -> None:
        """Start the node's VM (on its data, if it ran before); ``wait`` for AMQP."""
        with open(self.dir / "startup.log", "ab") as log:
            self.proc = subprocess.Popen(
                [SERVER], env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip

    def wait(self, timeout: float, what: str = "RabbitMQ node") -> None:
        """Raises: RuntimeError: AMQP did not answer in time, or the VM exited (with the
        log's tail)."""
        deadline = time.monotonic() + timeout
        while not self.listening():
            if (self.proc and self.proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start: {self.log_tail()}")
            time.sleep(0.2)

    def run_ctl(
        self, *args: str, tool: str = CTL, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -q -n NODE ARGS`` (or another CLI tool), not checked."""
        return subprocess.run(
            [tool, "-q", "-n", self.name, *args], env=self.env(), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.probe_port)) == 0

    def kill9(self) -> None:
        """SIGKILL the whole node (the Erlang VM and its helpers): a crash, not a stop."""
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        deadline = time.monotonic() + 30
        while self.listening() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the node's session (it is ours: start_new_session), SIGKILL after 60 s."""
        if not self.running():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self) -> str:
        logs = [self.dir / "startup.log", *sorted((self.dir / "log").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())
