"""Chaos on a three-node cluster: ``kill -9`` of the node that leads the hosts' alert lane (the
lane their broker user hashes to) in the middle of a storm of real hook runs from ten hosts,
two workers consuming, and the node restarted later. Goals: lost 0, duplicates 0, every hook
within its bound, mail flowing again within 20 s of the kill."""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika

from producer.hook import FOREGROUND_BOUND_S
from schemas import topology
from schemas.wire import decode_event as decode
from tests.chaos.chaos_hosts import TAP, Storm, flush_spool
from tests.support.chaos_support import Ledger, chaos_config, setup, wait_settled, workers
from tests.support.cluster import Cluster, ClusterNode
from tests.support.lanes import lane_of
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import take_all

RECOVERY_GOAL_S = 20.0


def _urls_toml(urls: tuple[str, ...]) -> str:
    return "urls = [" + ", ".join(f'"{url}"' for url in urls) + "]"


def _declare_tap(url: str) -> None:
    """A quorum queue on all three nodes bound like the work queues: a copy of every event
    that reached the broker, which survives the kill."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        arguments = {"x-queue-type": "quorum", "x-quorum-initial-group-size": 3}
        channel.queue_declare(TAP, durable=True, arguments=arguments)
        channel.queue_bind(TAP, topology.EXCHANGE, topology.BINDING_KEY)


class _Arrivals:
    """When each mail arrived (polled every 50 ms): the longest gap, and when mail came
    again after the kill."""

    def __init__(self, smtp: SmtpServer) -> None:
        self.smtp = smtp
        self.times: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        seen = 0
        while not self.stop.wait(0.05):
            count = len(self.smtp.messages)
            self.times += [time.monotonic()] * (count - seen)
            seen = count

    def longest_gap(self) -> float:
        gaps = [b - a for a, b in itertools.pairwise(self.times)]
        return round(max(gaps, default=0.0), 2)

    def gap_after(self, moment: float, window: float = 60.0) -> float | None:
        """The longest wait for a mail within ``window`` s of ``moment``, counting from
        ``moment`` itself (None: no mail came at all in the window)."""
        later = [moment, *(t for t in self.times if moment < t <= moment + window)]
        if len(later) == 1:
            return None
        return round(max(b - a for a, b in itertools.pairwise(later)), 2)


@dataclass
class _Disruption:
    log: list[str] = field(default_factory=list)
    kill: float | None = None  # when the node was killed (monotonic)


def _disrupt(cluster: Cluster, leader: ClusterNode, storm: Storm, record: _Disruption) -> None:
    """``kill -9`` ``leader`` 40 % into the storm, restart it 15 s later."""
    started = time.monotonic()
    try:
        storm.wait_for(0.4)
        record.kill = time.monotonic()
        leader.kill9()
        done = f"{storm.done()}/{storm.total} hook runs done"
        record.log.append(f"kill -9 {leader.name} (alerts leader) at {record.kill - started:.1f}s,"
                          f" {done}")  # fmt: skip
        time.sleep(15)
        began = time.monotonic()
        # A killed member recovers its queues' logs before AMQP opens: 5 s on a quiet machine,
        # 78 s and more than 120 s seen under the storm on two shared cores.
        cluster.heal(timeout=300)
        took = time.monotonic() - began
        done = f"{storm.done()}/{storm.total} hook runs done"
        record.log.append(f"restarted it at {began - started:.1f}s (took {took:.1f}s), {done}")
    except (RuntimeError, OSError, StopIteration, KeyError) as exc:
        at = time.monotonic() - started
        record.log.append(f"FAILED at {at:.1f}s: {type(exc).__name__}: {str(exc)[:160]}")


def node_loss(args: argparse.Namespace) -> dict[str, object]:
    """Ten hosts' hook runs over a three-node cluster whose alerts leader is killed."""
    runs = 40 if args.quick else 120
    started = time.monotonic()
    with (
        Cluster(3) as cluster,
        cluster.vhost("lwchaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-n-") as tmp,
        SmtpServer() as smtp,
    ):
        work = Path(tmp)
        urls = cluster.urls(vhost)
        config = chaos_config(work / "central.toml", urls[0], smtp.port)
        config.write_text(config.read_text().replace(f'url = "{urls[0]}"', _urls_toml(urls), 1))
        setup(config)
        _declare_tap(urls[0])
        hosts = []
        for index in range(10):
            directory = work / f"h{index}"
            directory.mkdir()
            hosts.append(directory / "loginwatch.toml")
            hosts[-1].write_text(
                f"[broker]\n{_urls_toml(urls)}\nconnect_timeout = 2.0\n"
                f'[host]\nname = "web-{index:02d}"\n[spool]\ndir = "{directory / "spool"}"\n'
            )
        storm, record = Storm(hosts, runs), _Disruption()
        # Asked before the storm: rabbitmqctl takes seconds on a loaded machine. The hosts
        # publish as the central user here: their events all go to that user's lane.
        lane = lane_of(urls[0], str(pika.URLParameters(urls[0]).credentials.username))
        leader = cluster.leader(vhost, lane)
        arrivals = _Arrivals(smtp)
        with workers(config, work / "logs", 2):
            threads = [threading.Thread(target=storm.host, args=(i,)) for i in range(len(hosts))]
            chaos = threading.Thread(target=_disrupt, args=(cluster, leader, storm, record))
            for thread in [*threads, chaos]:
                thread.start()
            for thread in [*threads, chaos]:
                thread.join()
            left = sum(flush_spool(host) for host in hosts)
            ids = {}
            for taken in take_all(cluster.up().url(vhost), TAP):
                login = decode(taken.body)
                ids[(login.host, login.tty)] = login.id_hex
            ledger = Ledger("node", set(ids.values()), logs=[])

            def refresh() -> None:
                ledger.mails = list(smtp.messages)
                ledger.logs = sorted((work / "logs").glob("*.log"))

            wait_settled(ledger, refresh, timeout=180)
        arrivals.stop.set()
        ledger.dead = take_all(cluster.up().url(vhost), topology.DEAD_QUEUE)
        figures = ledger.figures()
        figures["lost"] = int(figures["lost"]) + storm.total - len(ids)  # type: ignore[call-overload]
        recovery = arrivals.gap_after(record.kill) if record.kill else None
        figures.update(
            sent=storm.total,
            seconds=round(time.monotonic() - started, 1),
            reached_broker=len(ids),
            left_in_spools=left,
            hook_exit_codes=dict(storm.exits),
            hook_p50_ms=round(statistics.median(storm.times) * 1000, 1),
            hook_max_ms=round(max(storm.times) * 1000, 1),
            hooks_over_bound=sum(t > FOREGROUND_BOUND_S for t in storm.times),
            hook_bound_s=FOREGROUND_BOUND_S,
            longest_mail_gap_s=arrivals.longest_gap(),
            longest_mail_gap_after_kill_s=recovery,
            disruptions=record.log,
            lane=lane,
            lane_leader_after=cluster.leader(vhost, lane).name,
        )
        problems = [e for e in record.log if e.startswith("FAILED")]
        if record.kill is None or problems:
            figures["error"] = "the cluster was not disrupted as planned: " + "; ".join(record.log)
        elif recovery is None or recovery > RECOVERY_GOAL_S:
            figures["error"] = f"no mail within {RECOVERY_GOAL_S:g} s of the kill ({recovery})"
        elif figures["hooks_over_bound"]:
            figures["error"] = "a hook ran past its bound"
        return figures
