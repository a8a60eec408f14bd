"""Several central machines on one host: namespaces, a broker node, PostgreSQL and SMTP.

    with Rig(2) as rig:                              # two namespaces on a private bridge
        a, b = rig.machines
        rig.start(a, "worker", "worker-a")           # `loginwatch worker` inside machine A
        rig.wait_log("worker-a", "consuming")
        rig.start(b, "digest", "digest-b")           # `loginwatch digest` inside machine B
        publish_events(rig.amqp_url, events)         # from the root namespace, as hosts would
        a.kill_all()                                 # machine A loses power

Every service listens on the bridge's address only (tests/support/netns.py), where the
machines reach it over their veth links: a private RabbitMQ node (``BridgeNode``: plain
AMQP with ``allow_plaintext = true``, the explicit opt-in, or with ``tls=True`` AMQPS with
a throwaway CA and client certificates; a user of its own whose password sits in a 0600
file; tests/support/bridge_node.py), a private PostgreSQL (tests/support/pg_server.py:
TLS with a throwaway CA, ``sslmode=verify-full`` through ``[store] ca_file``, SCRAM password
from ``[store] password_file``), and an in-process SMTP server (STARTTLS with a certificate
for the bridge address, verified through ``[smtp] ca_file``). The shared broker
on :5672 and the machine's own PostgreSQL are never touched. Everything is stopped and
removed on exit, after a failure too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.bridge_node import BridgeNode
from tests.support.netns import Machine, Network
from tests.support.pg_server import PgServer, write_secret
from tests.support.services import missing
from tests.support.smtp_server import Received, SmtpServer
from tests.support.worker_helpers import ROOT

RECIPIENT = "ops@test.example"
# The chaos suite's routes: quiet-* ignored, failures to the digest, the rest mailed at once.
CHAOS_ROUTES = f"""
[[route]]
to = ["{RECIPIENT}"]
hosts = ["quiet-*"]
mode = "ignore"

[[route]]
to = ["{RECIPIENT}"]
kinds = ["failure"]
mode = "digest"

[[route]]
to = ["{RECIPIENT}"]
mode = "immediate"
"""


class StampedSmtp(SmtpServer):
    """An SMTP server that also notes when each mail arrived (monotonic seconds)."""

    def __init__(self, host: str) -> None:
        # STARTTLS with a certificate for its address: off loopback, the worker insists.
        super().__init__(host=host, port=_free_port(host), tls="starttls")
        self.arrivals: list[float] = []

    def store(self, received: Received) -> None:
        # First: aiosmtpd stores from one thread, so arrivals[i] is messages[i]'s.
        self.arrivals.append(time.monotonic())
        super().store(received)


class Rig:
    """``count`` central machines, one broker node, one PostgreSQL, one SMTP server."""

    def __init__(
        self, count: int, *, routes: str = CHAOS_ROUTES, extra: str = "", tls: bool = False
    ) -> None:
        if os.geteuid() != 0:
            missing("root (namespaces, a RabbitMQ node, a PostgreSQL instance)")
        self.work = Path(tempfile.mkdtemp(prefix="lw-machines-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self._stack = contextlib.ExitStack()
        self._count = count
        self._routes, self._extra, self._tls = routes, extra, tls
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Rig:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        stack = self._stack
        self.net = stack.enter_context(Network(self._count))
        (self.work / "node").mkdir()
        # Both at once: the node takes ~10 s to boot on two loaded cores, PostgreSQL ~2 s.
        self.node = BridgeNode(self.work / "node", self.net.address, tls=self._tls)
        stack.callback(self.node.close)
        booting = threading.Thread(target=self.node.start, daemon=True)
        booting.start()
        self.pg = stack.enter_context(PgServer(self.net.address))
        self.smtp = StampedSmtp(self.net.address)
        stack.enter_context(self.smtp)
        booting.join(150)
        if not self.node.listening():
            raise RuntimeError(f"RabbitMQ node did not start: {self.node.log_tail()}")
        self.config = self.write_config()
        done = self.loginwatch("setup")
        if done.returncode != 0:
            raise RuntimeError(f"loginwatch setup failed: {done.stderr.strip()[-500:]}")

    @property
    def machines(self) -> list[Machine]:
        return self.net.machines

    @property
    def amqp_url(self) -> str:
        """The node's loopback URL with its password: for the test's own publisher only."""
        return self.node.local_url()

    def write_config(self, name: str = "loginwatch", routes: str | None = None) -> Path:
        """A config for every machine (their file system is the host's), ``NAME.toml``: the
        broker and the store by the bridge address, their passwords in 0600 files."""
        broker_pw, store_pw = self.work / "broker.password", self.work / "store.password"
        if not broker_pw.exists():
            write_secret(broker_pw, self.node.password + "\n")
            self.pg.password_file(store_pw)
        path = self.work / f"{name}.toml"
        node = self.node
        if node.ca is None:
            transport = "allow_plaintext = true"  # the explicit opt-in: amqp:// off loopback
        else:
            transport = (f'ca_file = "{node.ca.cert}"\ncert_file = "{node.client_cert}"\n'
                         f'key_file = "{node.client_key}"')  # fmt: skip
        path.write_text(
            f"""
[broker]
url = "{node.url()}"
password_file = "{broker_pw}"
{transport}

[smtp]
host = "{self.net.address}"
port = {self.smtp.port}
from = "loginwatch@test.example"
timeout = 5
starttls = true
ca_file = "{self.smtp.cert_file}"

[store]
url = "{self.pg.url}"
password_file = "{store_pw}"
ca_file = "{self.pg.ca_file}"

[enrich]
dns = false

[worker]
retry_delays = [1, 2, 4]

[policy]
flood_max = 1000000
{self._extra}
{self._routes if routes is None else routes}""",
            encoding="utf-8",
        )
        return path

    def loginwatch(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``loginwatch ARGS --config …`` in the root namespace."""
        return subprocess.run(
            [sys.executable, "-m", "consumer.cli", *args, "--config", str(self.config)],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
        )  # fmt: skip

    def start(
        self,
        machine: Machine,
        command: str,
        name: str,
        *,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``loginwatch COMMAND`` inside ``machine``, its log at ``logs/NAME.log``."""
        path = str(config or self.config)
        proc = machine.popen(
            [sys.executable, "-m", "consumer.cli", command, "--config", path],
            log=self.log(name), env={"PYTHONUNBUFFERED": "1", **(env or {})}, cwd=ROOT,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def wait_log(self, name: str, pattern: str, timeout: float = 60) -> None:
        """Until ``logs/NAME.log`` shows ``pattern``.

        Raises:
            RuntimeError: it did not in time, or its process ended (with the log's tail).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log(name).read_text(errors="replace") if self.log(name).exists() else ""
            if re.search(pattern, text, re.M):
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} never logged {pattern!r}: {text[-1500:]}")

    def stop(self, name: str, timeout: float = 20) -> int:
        """SIGTERM ``name``'s process, kill -9 after ``timeout``; its exit status."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(10)

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every process still running, then kill -9 whatever remains per machine."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for machine in self.machines:
            machine.kill_all()
        for proc in self.procs.values():
            proc.wait(5)  # reaped: killed ones too

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if hasattr(self, "net"):
                self.stop_all()
        self._stack.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
