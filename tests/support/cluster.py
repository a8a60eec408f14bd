"""A private three-node RabbitMQ cluster, the way ``rabbit_node.py`` starts one node.

Every node has its own name, AMQP port, Erlang distribution port and data directory, and
listens on loopback only; the nodes share one Erlang cookie (each node's HOME holds the same
``.erlang.cookie``) and form the cluster with ``rabbitmqctl join_cluster``. A node keeps its
data across a stop or a ``kill -9``, so a restart brings it back into the cluster with its
queue members. The shared broker on :5672 is never touched. Everything is stopped by the
pids (process groups) it started, and its directories removed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions

from schemas import topology
from schemas.event import LoginEvent, encode
from tests.support.private_node import CTL, PrivateNode
from tests.support.rabbit_node import SERVER, free_port
from tests.support.services import missing

QUEUES = "/usr/lib/rabbitmq/bin/rabbitmq-queues"


class ClusterNode(PrivateNode):
    """One node, ``lwclu-<tag>-<n>@localhost`` on ``127.0.0.1:self.port``."""

    def __init__(self, root: Path, tag: str, index: int, cookie: str) -> None:
        directory = root / f"node{index}"
        directory.mkdir()
        self.port = free_port()
        super().__init__(directory, f"lwclu-{tag}-{index}@localhost", self.port)
        cookie_file = self.dir / ".erlang.cookie"  # HOME: the cluster's shared cookie
        cookie_file.write_text(cookie)
        cookie_file.chmod(0o400)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "disk_free_limit.absolute = 50MB\n"
        )

    def url(self, vhost: str = "/", user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def wait(self, timeout: float = 120, what: str = "") -> None:
        """Raises: RuntimeError: AMQP did not answer in time (with the log's tail)."""
        super().wait(timeout, what or f"cluster node {self.name}")

    def ctl(self, *args: str, tool: str = CTL, timeout: float = 120) -> str:
        """``rabbitmqctl -n NODE ARGS`` (or ``rabbitmq-queues``); its stdout.

        Raises:
            RuntimeError: it failed.
        """
        done = self.run_ctl(*args, tool=tool, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def stop_app(self) -> None:
        """A clean stop of the node's RabbitMQ application (the VM stays): its port closes."""
        self.ctl("stop_app", timeout=180)

    def start_app(self) -> None:
        self.ctl("start_app", timeout=180)
        self.wait()

    def close(self) -> None:
        self.stop()


@dataclass(frozen=True)
class QueueMembers:
    name: str
    type: str
    leader: str
    members: tuple[str, ...]
    online: tuple[str, ...]


class Cluster:
    """``size`` nodes joined into one cluster; a context manager that stops them all."""

    def __init__(self, size: int = 3) -> None:
        if not os.path.exists(SERVER):
            missing("rabbitmq-server (apt-get install rabbitmq-server)")
        if os.geteuid() != 0:
            missing("root (the nodes' files and ports)")
        self.dir = Path(tempfile.mkdtemp(prefix="loginwatch-cluster-"))
        tag = uuid.uuid4().hex[:6]
        cookie = secrets.token_hex(16).upper()
        self.nodes = tuple(ClusterNode(self.dir, tag, n + 1, cookie) for n in range(size))

    def __enter__(self) -> Cluster:
        try:
            for node in self.nodes:  # all at once: they boot in parallel
                node.launch()
            for node in self.nodes:
                node.wait()
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
                node.wait()
            self.await_running()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def urls(self, vhost: str = "/") -> tuple[str, ...]:
        return tuple(node.url(vhost) for node in self.nodes)

    def node_named(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def up(self) -> ClusterNode:
        """A node that answers (for rabbitmqctl)."""
        return next(node for node in self.nodes if node.listening())

    def running_nodes(self) -> set[str]:
        status = json.loads(self.up().ctl("cluster_status", "--formatter", "json"))
        return set(status.get("running_nodes", []))

    def await_running(self, timeout: float = 120) -> None:
        """Wait until every node runs and the cluster says so.

        Raises:
            RuntimeError: not in time.
        """
        deadline = time.monotonic() + timeout
        want = {node.name for node in self.nodes}
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, StopIteration, json.JSONDecodeError):
                if all(node.listening() for node in self.nodes) and self.running_nodes() == want:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the cluster did not come together: {self.nodes[0].log_tail()}")

    def heal(self, timeout: float = 120) -> None:
        """Bring back every node a test stopped or killed, and wait (each step up to
        ``timeout``) for the whole cluster."""
        for node in self.nodes:
            if not node.running():
                node.launch()
            elif not node.listening():
                node.ctl("start_app", timeout=180)
        for node in self.nodes:
            node.wait(timeout)
        self.await_running(timeout)

    @contextmanager
    def vhost(self, prefix: str = "lwclu") -> Iterator[str]:
        """A fresh vhost on the cluster (every node has it), guest's; deleted afterwards."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        node = self.up()
        node.ctl("add_vhost", name)
        node.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        try:
            yield name
        finally:
            with contextlib.suppress(RuntimeError, StopIteration):
                self.up().ctl("delete_vhost", name)

    def queues(self, vhost: str) -> dict[str, QueueMembers]:
        """Every queue of ``vhost`` with its type, leader and members (rabbitmqctl)."""
        out = self.up().ctl(
            "list_queues", "-p", vhost, "name", "type", "leader", "members", "online",
            "--formatter", "json",
        )  # fmt: skip
        found = {}
        for row in json.loads(out or "[]"):
            found[row["name"]] = QueueMembers(
                row["name"], str(row.get("type", "")), str(row.get("leader", "")),
                tuple(sorted(row.get("members") or ())), tuple(sorted(row.get("online") or ())),
            )  # fmt: skip
        return found

    def leader(self, vhost: str, queue: str) -> ClusterNode:
        return self.node_named(self.queues(vhost)[queue].leader)


def publish_confirmed(
    urls: tuple[str, ...], events: Iterable[LoginEvent], timeout: float = 60
) -> int:
    """Publish as a host does (persistent, mandatory, confirmed, as the central user), each
    event again on the next node when it was nacked or its node went away — as the hook's
    publisher does, while a quorum queue elects a new leader. Returns how many.

    Raises:
        RuntimeError: an event was not confirmed within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    nodes = itertools.cycle(urls)
    connection: pika.BlockingConnection | None = None
    count = 0
    try:
        for login in events:
            while True:
                try:
                    if connection is None or not connection.is_open:
                        connection = pika.BlockingConnection(pika.URLParameters(next(nodes)))
                        channel = connection.channel()
                        channel.confirm_delivery()
                    properties = pika.BasicProperties(
                        delivery_mode=2, content_type=topology.CONTENT_TYPE,
                        message_id=login.id_hex, user_id="guest",
                    )  # fmt: skip
                    channel.basic_publish(
                        topology.EXCHANGE, login.kind, encode(login), properties, mandatory=True
                    )
                    count += 1
                    break
                except (pika.exceptions.AMQPError, OSError) as exc:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"event {login.id_hex} not confirmed: {exc!r}") from exc
                    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                        if connection is not None and connection.is_open:
                            connection.close()
                    connection = None
                    time.sleep(0.3)
    finally:
        if connection is not None and connection.is_open:
            connection.close()
    return count
