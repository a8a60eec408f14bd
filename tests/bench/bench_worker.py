"""Benchmark: the worker. Figures, side by side in one run; no assertions.

- worker throughput for digest-only events against the raw pika consume rate
  (manual acks, same prefetch) of the same broker in the same run, interleaved,
  medians of rounds (two cores shared: single runs vary by 2x); and the same
  without the enrich stage, whose first-seen writes to the store dominate;
- immediate alert mails per second to a local aiosmtpd server (connection reuse);
- login-to-inbox latency p50/p99: real ssh key logins through a real sshd with
  the hook, the worker (a subprocess) and aiosmtpd, measured from the hook's
  event time to the moment the SMTP server accepted the mail.

Run alone: ``.venv/bin/python -m tests.bench.bench_worker``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pika

from consumer.alerts.pipeline import Settlement, Stages, build_stages
from consumer.alerts.worker import Worker
from consumer.broker.connection import Broker
from consumer.core.enriched import Enriched
from consumer.store import Sighting
from schemas import topology
from schemas.config import Config, load_config
from schemas.event import LoginEvent, encode
from tests.bench.bench_support import bench_vhost, median_ms, percentile_ms
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.smtp_server import Received, SmtpServer
from tests.support.worker_helpers import connect, running_worker, write_config

EVENTS = 2000
ROUNDS = 3
MAILS = 300
LOGINS = 20
PREFETCH = 10


def _fill(vhost: Vhost, count: int) -> None:
    """Publish ``count`` distinct events (confirmed) to the events exchange."""
    with connect(vhost) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        props = pika.BasicProperties(
            delivery_mode=2, content_type=topology.CONTENT_TYPE, user_id="guest"
        )
        for n in range(count):
            channel.basic_publish(topology.EXCHANGE, "login", encode(event(tty=f"b{n}")), props)


def _purge(vhost: Vhost, *queues: str) -> None:
    with connect(vhost) as connection:
        channel = connection.channel()
        for queue in queues:
            channel.queue_purge(queue)


def raw_consume_rate(vhost: Vhost, count: int) -> float:
    """Messages per second a bare pika consumer with manual acks takes off the alerts queue."""
    stamps: list[float] = []
    with connect(vhost) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)

        def on_message(ch: object, method: pika.spec.Basic.Deliver, *_: object) -> None:
            channel.basic_ack(method.delivery_tag)
            stamps.append(time.perf_counter())
            if len(stamps) == count:
                channel.stop_consuming()

        channel.basic_consume(topology.ALERTS_QUEUE, on_message)
        channel.start_consuming()
    return (count - 1) / (stamps[-1] - stamps[0])


def worker_rate(
    config_path: Path, count: int, build: Callable[[Config], Stages] = build_stages
) -> float:
    """Settled messages per second of an in-process ``Worker`` draining ``count`` events."""
    stamps: list[float] = []
    worker: Worker

    def on_settle(_outcome: Settlement) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == count:
            worker.stop()

    worker = Worker(load_config(config_path), build=build, on_settle=on_settle)
    worker.run()
    return (count - 1) / (stamps[-1] - stamps[0])


class _NoEnrich:
    """The enrich stage with nothing to look up: the cheap facts and the costly names alike."""

    def __call__(self, login: LoginEvent, now: datetime) -> Enriched:
        return Enriched(event=login)

    def facts(self, login: LoginEvent, now: datetime, *, votes: bool = True) -> Enriched:
        return Enriched(event=login)

    def placed(self, login: LoginEvent, now: datetime) -> Enriched:
        return Enriched(event=login)

    def sighting(self, placed: Enriched, now: datetime, *, votes: bool = True) -> Sighting:
        """No source to look up: nothing for the store to write."""
        return Sighting(placed.event.user, placed.event.id_hex, now)

    def names(self, enriched: Enriched) -> Enriched:
        return enriched

    def close(self) -> None:
        pass


def runtime_only(config: Config) -> Stages:
    """The real stages but enrich (DNS, GeoIP, first-seen writes): the runtime's own cost."""
    return dataclasses.replace(build_stages(config), enrich=_NoEnrich())  # type: ignore[arg-type]


def throughput(vhost: Vhost, work: Path) -> dict[str, float]:
    """Raw pika, the worker, and the worker without enrich, interleaved; medians of rounds."""
    config = write_config(work / "digest.toml", vhost)
    text = config.read_text().replace('mode = "immediate"', 'mode = "digest"')
    config.write_text(text.replace("[worker]\n", f"[worker]\nprefetch = {PREFETCH}\n"))
    with Broker(load_config(config).broker) as broker:
        broker.declare(topology.queue_specs((1, 2)))
    raw, full, bare = [], [], []
    for _ in range(ROUNDS):
        _fill(vhost, EVENTS)
        raw.append(raw_consume_rate(vhost, EVENTS))
        _fill(vhost, EVENTS)
        full.append(worker_rate(config, EVENTS))
        _fill(vhost, EVENTS)
        bare.append(worker_rate(config, EVENTS, runtime_only))
        _purge(vhost, topology.DIGEST_QUEUE)
    med = statistics.median
    return {
        "raw_pika_consume_per_s": round(med(raw)),
        "worker_digest_only_per_s": round(med(full)),
        "worker_vs_raw": round(med(full) / med(raw), 2),
        "worker_without_enrich_per_s": round(med(bare)),
        "worker_without_enrich_vs_raw": round(med(bare) / med(raw), 2),
    }


def mail_rate(vhost: Vhost, work: Path) -> dict[str, float]:
    with SmtpServer() as smtp:
        config = write_config(
            work / "mail.toml",
            vhost,
            smtp_port=smtp.port,
            extra="[policy]\nflood_max = 100000\n",
        )
        _fill(vhost, MAILS)
        rate = worker_rate(config, MAILS)
        connections = smtp.ehlos
    _purge(vhost, topology.DIGEST_QUEUE)
    return {"immediate_mails_per_s": round(rate, 1), "smtp_connections": connections}


def latency(vhost: Vhost, work: Path) -> dict[str, float | str]:
    """Hook event time → SMTP accept, for real ssh logins (hook runs without sshd)."""
    from tests.support.hookrun import HOOK, TapQueue
    from tests.support.hookrun import write_config as hook_config
    from tests.support.sshd import (
        ACCOUNT_STACK,
        AUTH_STACK,
        SESSION_STACK,
        TEST_USER,
        Sshd,
        hook_line,
    )

    arrivals: dict[str, float] = {}
    tap = TapQueue(vhost.url())  # a copy of every event: their times, set by the hook
    with SmtpServer() as smtp:
        accept = smtp.store

        def stamped(received: Received) -> None:
            accept(received)
            arrivals[str(received.message["Message-ID"])] = time.time()

        smtp.store = stamped  # type: ignore[method-assign]
        config = write_config(
            work / "latency.toml", vhost, smtp_port=smtp.port, extra="[policy]\nflood_max = 1000\n"
        )
        only_logins = config.read_text().replace('mode = "immediate"', 'kinds = ["login"]')
        config.write_text(only_logins)
        hook = hook_config(work, vhost.url(), host="bench-host")
        stack = AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(HOOK, hook)
        with running_worker(config, work / "latency-worker.log"), Sshd(stack) as sshd:
            for _ in range(LOGINS):
                before = len(arrivals)
                sshd.ssh(TEST_USER, "true")
                smtp.wait_for(before + 1, timeout=10)
            smtp.wait_for(LOGINS, timeout=10)
    events = {event.id_hex: event for _, event in tap.take(2 * LOGINS, timeout=10)}
    tap.close()
    seconds = [
        at - events[event_id].time.timestamp()
        for message_id, at in arrivals.items()
        for event_id in events
        if event_id in message_id
    ]
    return {
        "logins": len(seconds),
        "login_to_inbox_p50_ms": round(median_ms(seconds), 1),
        "login_to_inbox_p99_ms": round(percentile_ms(seconds, 99), 1),
    }


def measure() -> dict[str, object]:
    """Every worker figure, in one run on one broker."""
    figures: dict[str, object] = {}
    # aiosmtpd logs every connection; pika every channel: the figures are what we want to see.
    for noisy in ("mail.log", "pika"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with bench_vhost() as vhost, tempfile.TemporaryDirectory(prefix="lw-bench-w-") as tmp:
        work = Path(tmp)
        figures.update(throughput(vhost, work))
        figures.update(mail_rate(vhost, work))
        try:
            figures.update(latency(vhost, work))
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            figures["latency_error"] = str(exc)[:200]
    return figures


if __name__ == "__main__":
    threading.excepthook = lambda args: print(args, file=sys.stderr)
    print(json.dumps(measure(), indent=2))
