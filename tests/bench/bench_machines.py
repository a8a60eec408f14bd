"""Benchmark: two central machines against one, on one shared PostgreSQL store.

Two network namespaces (tests/support/machines.py) each run ``loginwatch worker``; the
store is a private PostgreSQL (password authentication, on the bridge address), the broker
a private RabbitMQ node, the SMTP server in this process. Two workloads, each measured with
one worker (machine A) and with two (A and B), side by side in one run, rounds interleaved:

- ``mail``: every event an immediate mail (``mode = "immediate"``), timed by the SMTP
  server's arrivals;
- ``digest``: every event digest-only (``mode = "digest"``: the worker decides and records
  it, no mail; the scheduler's copy waits in ``loginwatch.digest``, purged between runs),
  timed by the alerts queue's depth.

The events are queued before the workers start; a figure counts what was settled from the
moment the last worker consumes to the last event. Beside each rate: the CPU seconds per
1,000 events of the workers, PostgreSQL, the RabbitMQ node (delivering, and taking the
confirmed publishes before) and this process (SMTP server), how busy the machine's cores
were and how many of them our parts used: they name what bounds it (2 shared cores here).

Run alone: ``.venv/bin/python -m tests.bench.bench_machines [--quick]``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pika

from schemas import topology
from schemas.event import encode
from tests.support.factories import event
from tests.support.machines import RECIPIENT, Rig

EVENTS = {"mail": 1500, "digest": 4000}
ROUNDS = 2
TICK = os.sysconf("SC_CLK_TCK")
WORKLOADS = {
    "mail": f'\n[[route]]\nto = ["{RECIPIENT}"]\nmode = "immediate"\n',
    "digest": f'\n[[route]]\nto = ["{RECIPIENT}"]\nmode = "digest"\n',
}


def _fill(url: str, count: int) -> None:
    """``count`` new events (confirmed, as hosts publish) on the alerts queue."""
    tag = uuid.uuid4().hex[:8]
    props = pika.BasicProperties(
        delivery_mode=2, content_type=topology.CONTENT_TYPE, user_id="loginwatch"
    )
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for n in range(count):
            body = encode(event(tty=f"{tag}-{n}", client_ip=f"10.9.{n // 250 % 250}.{n % 250}"))
            channel.basic_publish(topology.EXCHANGE, "login", body, props)


def _depth(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _group(leader: int | None, key: int) -> list[int]:
    """``leader`` and every process whose /proc stat field ``key`` (3: ppid, 5: session)
    is ``leader``."""
    if leader is None:
        return []
    found = [leader]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[key - 2]) == leader and int(entry.name) != leader:
                found.append(int(entry.name))
    return found


def _busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class _Meter:
    """CPU of each part between ``start()`` and ``stop()``."""

    def __init__(self, parts: dict[str, Callable[[], list[int]]]) -> None:
        self.parts = parts
        self.before: dict[str, float] = {}
        self.cores = (0.0, 0.0)
        self.began = 0.0

    def start(self) -> None:
        self.before = {name: _cpu(pids()) for name, pids in self.parts.items()}
        self.cores = _busy()
        self.began = time.monotonic()

    def stop(self, events: int) -> dict[str, float]:
        busy, total = _busy()
        wall = max(1e-6, time.monotonic() - self.began)
        used = {name: _cpu(pids()) - self.before[name] for name, pids in self.parts.items()}
        shown = {
            f"cpu_s_per_1000_{n}": round(1000 * s / max(1, events), 2) for n, s in used.items()
        }
        cores = os.cpu_count() or 1
        busy_share = (busy - self.cores[0]) / max(1.0, total - self.cores[1])
        # All cores' use against ours: the difference is other work on the machine.
        ours = round(sum(used.values()) / wall, 2)
        return {**shown, "cores_busy": round(busy_share * cores, 2), "cores_ours": ours}


def measure_one(rig: Rig, workload: str, config: Path, machines: int) -> dict[str, float]:
    """Events per second of ``machines`` workers draining a full queue of ``workload``."""
    count = EVENTS[workload]
    with pika.BlockingConnection(pika.URLParameters(rig.amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_purge(topology.DIGEST_QUEUE)
        node = _group(rig.node.proc.pid if rig.node.proc else None, 5)
        before = _cpu(node)
        _fill(rig.amqp_url, count)
        published = 1000 * (_cpu(node) - before) / count
        mails_before = len(rig.smtp.arrivals)
        names = [f"{workload}-{machines}-{n}-{uuid.uuid4().hex[:4]}" for n in range(machines)]
        meter = _Meter({
            "workers": lambda: [rig.procs[name].pid for name in names],
            "postgres": lambda: _group(rig.pg.pid(), 3),
            "rabbitmq": lambda: _group(rig.node.proc.pid if rig.node.proc else None, 5),
            "bench_smtp": lambda: [os.getpid()],
        })  # fmt: skip

        def done() -> int:
            if workload == "mail":
                return len(rig.smtp.arrivals) - mails_before
            # Both work queues bind every event: taken off the alerts queue is settled but
            # for the few in flight (prefetch 10 per worker).
            return count - _depth(channel, topology.ALERTS_QUEUE)

        for name, machine in zip(names, rig.machines, strict=False):
            rig.start(machine, "worker", name, config=config)
        for name in names:
            rig.wait_log(name, r"consuming loginwatch\.alerts")
        started, at_start = time.monotonic(), done()
        meter.start()
        deadline = started + 300
        while (finished := done()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = time.monotonic()
        if workload == "mail":
            ended = rig.smtp.arrivals[-1]
        figures = meter.stop(finished - at_start)
        for name in names:
            rig.stop(name)
    rate = (finished - at_start) / max(1e-6, ended - started)
    return {"per_s": rate, **figures, "cpu_s_per_1000_rabbitmq_publish": round(published, 2)}


def measure(quick: bool = False) -> dict[str, object]:
    rounds = 1 if quick else ROUNDS
    if quick:
        EVENTS.update(mail=400, digest=1000)
    figures: dict[str, object] = {}
    with Rig(2) as rig:
        for workload, routes in WORKLOADS.items():
            config = rig.write_config(workload, routes)
            runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
            for _ in range(rounds):
                for machines in (1, 2):
                    runs[machines].append(measure_one(rig, workload, config, machines))
            one, two = (statistics.median(r["per_s"] for r in runs[m]) for m in (1, 2))
            figures[f"{workload}_one_worker_per_s"] = round(one, 1)
            figures[f"{workload}_two_machines_per_s"] = round(two, 1)
            figures[f"{workload}_two_vs_one"] = round(two / one, 2)
            for machines in (1, 2):
                last = runs[machines][-1]
                figures[f"{workload}_{machines}w"] = {k: v for k, v in last.items() if k != "per_s"}
    figures["events"] = dict(EVENTS)
    return figures


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv), indent=2))
