"""A private RabbitMQ node with a TLS listener, and a throwaway CA for it.

The shared broker is never touched: the node has its own name, data and log
directories, config (deploy/rabbitmq/rabbitmq-tls.conf with our paths and
port), Erlang cookie (HOME) and distribution port, and listens on loopback
only. It is stopped by the pid it writes, and its directory removed.
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

from schemas.topology import HASH_PLUGIN
from tests.support.deploy_host import REPO
from tests.support.services import missing

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EXAMPLE = REPO / "deploy" / "rabbitmq" / "rabbitmq-tls.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


class ThrowawayCA:
    """A CA and certificates it signs, made with the openssl CLI in ``directory``."""

    def __init__(self, directory: Path, name: str = "ca") -> None:
        self.directory = directory
        self.cert = directory / f"{name}.pem"
        self.key = directory / f"{name}.key"
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", self.key, "-out", self.cert, "-subj", f"/CN=loginwatch test {name}",
        )  # fmt: skip

    def issue(self, name: str, extensions: str) -> tuple[Path, Path]:
        """A certificate and key for ``name`` with ``extensions``; returns (cert, key)."""
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        csr, ext = self.directory / f"{name}.csr", self.directory / f"{name}.ext"
        ext.write_text(extensions)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={name}")  # fmt: skip
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext)  # fmt: skip
        return cert, key


class TlsNode:
    """``rabbitmq-server`` as ``lwtls-<random>@localhost``, TLS on ``self.port``."""

    def __init__(self) -> None:
        if not os.path.exists(SERVER) or shutil.which("openssl") is None:
            missing("rabbitmq-server and openssl (apt-get install rabbitmq-server openssl)")
        if os.geteuid() != 0:
            missing("root (the node's files and ports)")
        self.dir = Path(tempfile.mkdtemp(prefix="loginwatch-tls-"))
        self.name = f"lwtls-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.ca = ThrowawayCA(self.dir)
        self.server_cert, self.server_key = self.ca.issue(
            "server", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
        )
        self.client_cert, self.client_key = self.ca.issue("client", "extendedKeyUsage=clientAuth\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        text = EXAMPLE.read_text()
        for old, new in (
            ("listeners.tcp.local = 127.0.0.1:5672", "listeners.tcp = none"),
            ("listeners.ssl.default = 5671", f"listeners.ssl.default = 127.0.0.1:{self.port}"),
            ("/etc/rabbitmq/tls/ca.pem", str(self.ca.cert)),
            ("/etc/rabbitmq/tls/server.pem", str(self.server_cert)),
            ("/etc/rabbitmq/tls/server.key", str(self.server_key)),
        ):
            assert old in text, old
            text = text.replace(old, new)
        path = self.dir / "rabbitmq.conf"
        path.write_text(text)
        return path

    def __enter__(self) -> TlsNode:
        env_file = self.dir / "rabbitmq-env.conf"
        # Like the machine's: Erlang distribution on loopback only.
        env_file.write_text(
            'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface'
            ' {127,0,0,1}"\n'
        )
        (self.dir / "enabled_plugins").write_text(f"[{HASH_PLUGIN}].\n")
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.dir),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(self._config()),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
        }
        with open(self.dir / "startup.log", "wb") as log:
            self.proc = subprocess.Popen(
                [SERVER], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"TLS node did not start: {self.log_tail()}")
            time.sleep(0.2)
        return self

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def log_tail(self) -> str:
        logs = [self.dir / "startup.log", *sorted((self.dir / "log").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())

    def __exit__(self, *exc: object) -> None:
        pid_file = self.dir / "node.pid"
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(text), signal.SIGTERM)  # the node's own pid: a clean stop
        elif self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our session: no pid file yet
        if self.proc is not None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
