"""A private RabbitMQ node on a test network's bridge address (tests/support/netns.py).

The shared broker on :5672 is never touched: the node has its own name, port, data
directory, Erlang cookie (HOME) and distribution port (on loopback). It listens on the
bridge address, where the namespaces reach it, with plain AMQP (the machines' config says
``allow_plaintext = true``) or with ``tls`` AMQPS only; and with plain AMQP on this
namespace's loopback, for the test's own publisher. Its user ``loginwatch`` has a random
password that sits only in the node's 0600 config file and the machines' password file.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import uuid
from pathlib import Path

from tests.support.pg_server import write_secret
from tests.support.private_node import PrivateNode
from tests.support.rabbit_node import SERVER, ThrowawayCA
from tests.support.services import missing

AMQP_USER = "loginwatch"


class BridgeNode(PrivateNode):
    """``rabbitmq-server`` as ``lwnet-<random>@localhost`` on ``address:port``: plain AMQP,
    or with ``tls`` AMQPS only (a throwaway CA's server certificate for the address, client
    certificates required); plain AMQP on this namespace's loopback for the test itself.
    Erlang distribution on loopback (rabbitmqctl from the root namespace)."""

    def __init__(self, directory: Path, address: str, *, tls: bool = False) -> None:
        if not os.path.exists(SERVER):
            missing("rabbitmq-server (apt-get install rabbitmq-server)")
        self.address = address
        self.port = _free_port(address)
        self.local_port = _free_port("127.0.0.1")
        super().__init__(directory, f"lwnet-{uuid.uuid4().hex[:8]}@localhost", self.local_port)
        self.password = secrets.token_urlsafe(18)
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

    def url(self) -> str:
        """What the machines use: no password (``password_file``'s), TLS when the node has it."""
        scheme = "amqp" if self.ca is None else "amqps"
        return f"{scheme}://{AMQP_USER}@{self.address}:{self.port}/%2F"

    def local_url(self) -> str:
        """Plain AMQP on loopback with the password: the test's own publisher."""
        return f"amqp://{AMQP_USER}:{self.password}@127.0.0.1:{self.local_port}/%2F"

    def start(self, timeout: float = 120) -> BridgeNode:
        """Raises: RuntimeError: AMQP did not answer in time (with the log's tail)."""
        self.launch()
        self.wait(timeout)
        return self

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run_ctl(*args, timeout=timeout)

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(ready, unacked) of ``queue`` in ``/``, from rabbitmqctl; (-1, -1) if it failed."""
        done = self.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged")
        for line in done.stdout.splitlines():
            name, *numbers = line.split()
            if name == queue and len(numbers) == 2:
                return int(numbers[0]), int(numbers[1])
        return -1, -1

    def close(self) -> None:
        self.stop()


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
