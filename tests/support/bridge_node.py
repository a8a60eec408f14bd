"""A private RabbitMQ node on a test network's bridge address (tests/support/netns.py).

The shared broker on :5672 is never touched: the node has its own name, port, data
directory, Erlang cookie (HOME) and distribution port (on loopback). It listens on the
bridge address, where the namespaces reach it, with plain AMQP (the machines' config says
``allow_plaintext = true``) or with ``tls`` AMQPS only; and with plain AMQP on this
namespace's loopback, for the test's own publisher. Its user ``loginwatch`` has a random
password that sits only in the node's 0600 config file and the machines' password file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.pg_server import write_secret
from tests.support.rabbit_node import SERVER, ThrowawayCA
from tests.support.services import missing

CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
AMQP_USER = "loginwatch"


class BridgeNode:
    """``rabbitmq-server`` as ``lwnet-<random>@localhost`` on ``address:port``: plain AMQP,
    or with ``tls`` AMQPS only (a throwaway CA's server certificate for the address, client
    certificates required); plain AMQP on this namespace's loopback for the test itself.
    Erlang distribution on loopback (rabbitmqctl from the root namespace)."""

    def __init__(self, directory: Path, address: str, *, tls: bool = False) -> None:
        if not os.path.exists(SERVER):
            missing("rabbitmq-server (apt-get install rabbitmq-server)")
        self.dir = directory
        self.address = address
        self.name = f"lwnet-{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port(address)
        self.local_port = _free_port("127.0.0.1")
        self.password = secrets.token_urlsafe(18)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca: ThrowawayCA | None = None
        listeners = f"listeners.tcp.local = 127.0.0.1:{self.local_port}\n"
        if tls:
            self.ca = ThrowawayCA(directory)
            cert, key = self.ca.issue(
                "server", f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n"
            )
            self.client_cert, self.client_key = self.ca.issue(
                "client", "extendedKeyUsage=clientAuth\n"
            )
            listeners += (
                f"listeners.ssl.default = {address}:{self.port}\n"
                f"ssl_options.cacertfile = {self.ca.cert}\nssl_options.certfile = {cert}\n"
                f"ssl_options.keyfile = {key}\nssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n"
            )
        else:
            listeners += f"listeners.tcp.default = {address}:{self.port}\n"
        # The password sits in this 0600 file only (RabbitMQ reads it at first boot).
        write_secret(
            directory / "rabbitmq.conf",
            listeners + "loopback_users = none\n"
            f"default_user = {AMQP_USER}\ndefault_pass = {self.password}\n"
            "disk_free_limit.absolute = 50MB\n",
        )
        (directory / "rabbitmq-env.conf").write_text(
            'ERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface'
            ' {127,0,0,1}"\n'
        )
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "advanced.config").write_text("[].\n")

    def url(self) -> str:
        """What the machines use: no password (``password_file``'s), TLS when the node has it."""
        scheme = "amqp" if self.ca is None else "amqps"
        return f"{scheme}://{AMQP_USER}@{self.address}:{self.port}/%2F"

    def local_url(self) -> str:
        """Plain AMQP on loopback with the password: the test's own publisher."""
        return f"amqp://{AMQP_USER}:{self.password}@127.0.0.1:{self.local_port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.dir),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(_free_port("127.0.0.1")),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
        }

    def start(self, timeout: float = 120) -> BridgeNode:
        """Raises: RuntimeError: AMQP did not answer in time (with the log's tail)."""
        with open(self.dir / "startup.log", "ab") as log:
            self.proc = subprocess.Popen(
                [SERVER], env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node did not start: {self.log_tail()}")
            time.sleep(0.2)
        return self

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CTL, "-q", "-n", self.name, *args], env=self._env(), capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(ready, unacked) of ``queue`` in ``/``, from rabbitmqctl; (-1, -1) if it failed."""
        done = self.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged")
        for line in done.stdout.splitlines():
            name, *numbers = line.split()
            if name == queue and len(numbers) == 2:
                return int(numbers[0]), int(numbers[1])
        return -1, -1

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.local_port)) == 0

    def log_tail(self) -> str:
        logs = [self.dir / "startup.log", *sorted((self.dir / "log").glob("*.log"))]
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in logs if p.exists())

    def close(self) -> None:
        """SIGTERM to the node's session (it is ours: start_new_session), SIGKILL after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
