"""A three-node RabbitMQ cluster (tests/support/cluster.py): ``setup`` places every queue's
members on all nodes, a hook whose first node is down publishes to another, a node that
never answers costs the hook one ``connect_timeout``, and a worker whose node dies goes on
with the next node without losing or repeating a mail."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pika
import pytest

from schemas import topology
from schemas.nodes import node_order
from schemas.wire import decode_event as decode
from tests.support.chaos_support import chaos_config
from tests.support.cluster import Cluster, publish_confirmed
from tests.support.factories import event
from tests.support.hookrun import SilentListener, run_hook, spooled, wait_for
from tests.support.smtp_server import Received, SmtpServer
from tests.support.worker_helpers import WorkerProcess, loginwatch

pytestmark = pytest.mark.integration

HOST = "web-cluster-1"
_EVENT = re.compile(rb"^X-Loginwatch-Event: ([0-9a-f]{32})\r?$", re.M | re.I)


def urls_toml(urls: tuple[str, ...]) -> str:
    return "urls = [" + ", ".join(f'"{url}"' for url in urls) + "]"


def central_config(path: Path, urls: tuple[str, ...], smtp_port: int) -> Path:
    """The chaos suite's central config (every login mailed), with the cluster's nodes."""
    chaos_config(path, urls[0], smtp_port)
    text = path.read_text()
    path.write_text(text.replace(f'url = "{urls[0]}"', urls_toml(urls), 1))
    return path


def hook_config(directory: Path, urls: tuple[str, ...]) -> Path:
    path = directory / "loginwatch.toml"
    spool = directory / "spool"
    path.write_text(
        f"[broker]\n{urls_toml(urls)}\nconnect_timeout = 2.0\npublish_timeout = 15.0\n"
        f'[host]\nname = "{HOST}"\n[spool]\ndir = "{spool}"\n'
    )
    return path


def mailed_ids(mails: list[Received]) -> list[str]:
    """The event id of every mail (its X-Loginwatch-Event header)."""
    return [m.group(1).decode() for mail in mails if (m := _EVENT.search(mail.data))]


def setup(config: Path) -> None:
    done = loginwatch("setup", "--config", str(config), timeout=180)
    assert done.returncode == 0, done.stderr


ALERTS = topology.ALERTS_QUEUE


def take(url: str, queue: str, count: int, timeout: float = 30) -> list[bytes]:
    """Remove up to ``count`` messages from ``queue`` through the node at ``url``; from the
    alerts queue, or any of its lanes, for ``ALERTS_QUEUE``."""
    order = list(topology.alert_queues(topology.DEFAULT_LANES) if queue == ALERTS else (queue,))
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < count and time.monotonic() < deadline:
        asked = order[0]
        try:
            with pika.BlockingConnection(pika.URLParameters(url)) as connection:
                channel = connection.channel()
                while len(bodies) < count and time.monotonic() < deadline:
                    found = []
                    for asked in order:
                        method, _, body = channel.basic_get(asked, auto_ack=True)
                        if method is not None:
                            found.append(body)
                    if not found:
                        connection.sleep(0.1)
                    bodies += found
        except pika.exceptions.AMQPError:
            # Right after a node stops, a quorum queue it led answers "noproc" until a
            # new leader is elected (a basic_get that fails took nothing), and the broker
            # closes the connection: ask again, that queue last, so that it cannot hide
            # the other lanes meanwhile (under load an election has taken over 30 s).
            order.remove(asked)
            order.append(asked)
            time.sleep(0.5)
    return bodies[:count]


def replicated(cluster: Cluster, vhost: str) -> None:
    """Wait until every queue ``setup`` declares is a quorum queue with a member online on
    each node. rabbitmqctl may lag a queue's members by a moment, and a node stopped before
    its peers' members of a queue just declared are up can leave that queue without a
    leader (basic_get: "noproc") for minutes: a failover test starts from here."""
    names = {node.name for node in cluster.nodes}
    wanted = {spec.name for spec in topology.queue_specs((1, 2, 4))}
    assert wait_for(
        lambda: (
            all(
                (q.type, set(q.members), set(q.online)) == ("quorum", names, names)
                for q in cluster.queues(vhost).values()
            )
            and set(cluster.queues(vhost)) == wanted
        ),
        timeout=60,
        step=0.5,
    ), cluster.queues(vhost)


def test_setup_places_every_queue_on_all_three_nodes(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path
) -> None:
    config = central_config(tmp_path / "central.toml", cluster.urls(cluster_vhost), 2525)
    setup(config)
    replicated(cluster, cluster_vhost)
    # Rerunning setup on the live cluster finds nothing to disagree with.
    setup(config)


def test_setup_keeps_queues_declared_for_one_node_and_says_how_to_grow_them(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path
) -> None:
    urls = cluster.urls(cluster_vhost)
    one = tmp_path / "one.toml"
    one.write_text(central_config(tmp_path / "c.toml", urls, 2525).read_text().replace(
        urls_toml(urls), f'url = "{urls[0]}"'
    ))  # fmt: skip
    setup(one)  # as a single-node install did, before the cluster
    done = loginwatch("setup", "--config", str(tmp_path / "c.toml"), timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"{topology.ALERTS_QUEUE}, {topology.DIGEST_QUEUE}" in done.stderr
    assert "kept as they are" in done.stderr and "rabbitmq-queues grow" in done.stderr
    assert set(cluster.queues(cluster_vhost)) == {s.name for s in topology.queue_specs((1, 2, 4))}


def test_a_hook_whose_first_node_is_down_publishes_to_another(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path
) -> None:
    urls = cluster.urls(cluster_vhost)
    setup(central_config(tmp_path / "central.toml", urls, 2525))
    replicated(cluster, cluster_vhost)
    first = cluster.nodes[node_order(3, HOST)[0]]
    first.stop_app()
    run = run_hook(hook_config(tmp_path, urls), timeout=10)
    assert run.returncode == 0, run.stderr
    assert wait_for(lambda: not spooled(tmp_path), timeout=20), "the event left the spool"
    other = next(node for node in cluster.nodes if node is not first)
    [body] = take(other.url(cluster_vhost), ALERTS, 1, timeout=120)
    assert (decode(body).host, decode(body).user) == (HOST, "alice")
    assert take(other.url(cluster_vhost), ALERTS, 1, timeout=1) == []


def test_a_node_that_never_answers_costs_the_hook_one_connect_timeout(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path
) -> None:
    urls = cluster.urls(cluster_vhost)
    setup(central_config(tmp_path / "central.toml", urls, 2525))
    with SilentListener() as silent_port:
        silent = f"amqp://guest:guest@127.0.0.1:{silent_port}/{cluster_vhost}"
        # The silent "node" where this host starts: node_order(2, HOST) picks it first.
        pair = (silent, urls[0]) if node_order(2, HOST)[0] == 0 else (urls[0], silent)
        started = time.monotonic()
        assert run_hook(hook_config(tmp_path, pair), timeout=10).returncode == 0
        assert wait_for(lambda: not spooled(tmp_path), timeout=15)
        took = time.monotonic() - started
    [body] = take(urls[0], ALERTS, 1)
    assert decode(body).host == HOST
    # connect_timeout is 2 s; the whole publish_timeout (15 s) would mean it hung there.
    assert took < 8, f"published after {took:.1f} s"


def test_a_worker_whose_node_dies_goes_on_with_the_next_and_loses_nothing(
    cluster: Cluster, cluster_vhost: str, tmp_path: Path
) -> None:
    urls = cluster.urls(cluster_vhost)
    with SmtpServer() as smtp:
        config = central_config(tmp_path / "central.toml", urls, smtp.port)
        setup(config)
        replicated(cluster, cluster_vhost)
        # The worker starts at the node this machine's name picks (consumer/broker/connection.py).
        mine = cluster.nodes[node_order(3, socket.gethostname())[0]]
        others = [node for node in cluster.nodes if node is not mine]
        worker = WorkerProcess(config, tmp_path / "worker.log")
        try:
            worker.wait_for(r"consuming", timeout=60)
            before = [event(id=os.urandom(16), host=f"web-{n % 5}", tty=f"a{n}") for n in range(20)]
            publish_confirmed((others[0].url(cluster_vhost),), before)
            smtp.wait_for(len(before), timeout=60)
            mine.kill9()
            after = [event(id=os.urandom(16), host=f"web-{n % 5}", tty=f"b{n}") for n in range(20)]
            publish_confirmed(tuple(node.url(cluster_vhost) for node in others), after)
            sent = {e.id_hex for e in before + after}
            mails = smtp.wait_for(len(sent), timeout=90)
            time.sleep(2)  # a duplicate would come right behind
            mailed = Counter(mailed_ids(smtp.wait_for(0)))
        finally:
            try:
                worker.stop()
            except subprocess.TimeoutExpired:
                # Seen once under load, and not this test's subject: after the kill, the
                # worker's SIGTERM waited on pika's close, which a broker that never answers
                # a channel's close holds (closing note). Every delivery was settled by
                # then; what was lost or sent twice is asserted below all the same.
                worker.kill()
                print("the worker did not stop within 20 s of SIGTERM: killed")
    assert len(mails) >= len(sent)
    text = worker.text()
    # It was on the node that died, and went on with another one.
    connected = re.findall(r"connected to broker node 127\.0\.0\.1:(\d+)", text)
    assert connected[0] == str(mine.port), text[-3000:]
    assert {int(port) for port in connected[1:]} & {node.port for node in others}, text[-3000:]
    assert set(mailed) == sent, f"lost: {len(sent - set(mailed))}\n{worker.text()[-3000:]}"
    assert max(mailed.values()) == 1, "a mail was sent twice"
