"""Benchmark: a fleet of 10,000 simulated hosts against one worker. Figures, no assertions.

Events are published with pika as hosts would (persistent, confirmed, mandatory), each
with its own ``host`` name (``h00000`` … ``h09999``), paced at a fixed rate, while one
``loginwatch worker`` subprocess handles them (successful logins mailed to an aiosmtpd
server, failures digest-only, ``quiet-*`` hosts ignored: tests/support/chaos_support.py's routes).

Both with a mail for every login (flood control lifted: the heaviest case) and with the
default flood control (10 mails per recipient per 10 minutes, the rest folded into the
digest).

1. The maximum sustained rate: the rate is stepped up (x1.5; after a failed step, halfway
   back, until within 20 %); a step holds when the queue ends it (nearly) empty and is not
   growing.
2. At 80 % of that rate, 10,000 distinct hosts in one run: the queue depth over time.

Run alone: ``.venv/bin/python -m tests.bench.bench_load [--quick]``.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika

from schemas import topology
from schemas.event import LoginEvent, encode
from tests.bench.bench_support import bench_vhost
from tests.support.chaos_support import chaos_config, mixed_event, setup, workers
from tests.support.smtp_server import SmtpServer

HOSTS = 10_000


def fleet_event(n: int) -> LoginEvent:
    """Event ``n``: host ``h{n mod 10,000}``, the chaos stream's mix of kinds."""
    return mixed_event(n, host=f"h{n % HOSTS:05d}")


class Paced:
    """Publishes ``rate`` events a second for ``seconds`` on one confirmed channel."""

    def __init__(self, url: str, start: int) -> None:
        self.url = url
        self.next = start

    def run(self, rate: float, seconds: float, limit: int | None = None) -> float:
        """Returns the rate actually achieved (confirms can be the limit); stops early
        once ``limit`` events went out."""
        params = pika.URLParameters(self.url)
        # As the central user, which may speak for any host (a message without one is dead).
        user = str(params.credentials.username)
        props = pika.BasicProperties(
            delivery_mode=2, content_type=topology.CONTENT_TYPE, user_id=user
        )
        sent = 0
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            began = time.monotonic()
            while (elapsed := time.monotonic() - began) < seconds and sent != limit:
                due = int(elapsed * rate) + 1
                while sent < due and sent != limit:
                    login = fleet_event(self.next)
                    channel.basic_publish(
                        topology.EXCHANGE, login.kind, encode(login), props, mandatory=True
                    )
                    self.next += 1
                    sent += 1
                time.sleep(max(0.0, (sent / rate) - (time.monotonic() - began)))
        return sent / (time.monotonic() - began)


class DepthProbe:
    """Samples the alerts queue's ready count once a second (and empties the digest queue)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with pika.BlockingConnection(pika.URLParameters(self.url)) as connection:
            channel = connection.channel()
            while not self._stop.is_set():
                queue = channel.queue_declare(topology.ALERTS_QUEUE, passive=True).method
                self.samples.append(int(queue.message_count))
                # Nobody consumes the digest queue here (the scheduler would): a copy of
                # every event piling up there costs the broker, not the worker, so purge it.
                channel.queue_purge(topology.DIGEST_QUEUE)
                connection.sleep(1.0)

    def __enter__(self) -> DepthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _slope(samples: list[int]) -> float:
    """Least-squares growth of the depth, messages per second."""
    if len(samples) < 3:
        return 0.0
    xs = range(len(samples))
    mx, my = statistics.mean(xs), statistics.mean(samples)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, samples, strict=True)) / var


def _held(samples: list[int], rate: float) -> bool:
    """The queue ended (nearly) empty and its second half was not growing."""
    tail = samples[len(samples) // 2 :]
    return bool(tail) and tail[-1] <= max(20, rate) and _slope(tail) < 0.05 * rate


def _drain(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while time.monotonic() < deadline:
            if channel.queue_declare(topology.ALERTS_QUEUE, passive=True).method.message_count == 0:
                return
            connection.sleep(0.5)


def measure(quick: bool = False) -> dict[str, object]:
    """Both policies: a mail for every login, and the default flood control (10 per 10 min)."""
    return {
        "mail_every_login": _measure(quick, flood_max=1_000_000, rate=60.0),
        "flood_control": _measure(quick, flood_max=10, rate=200.0),
    }


def _measure(quick: bool, flood_max: int, rate: float) -> dict[str, object]:
    step_s = 8.0 if quick else 15.0
    figures: dict[str, object] = {}
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    with (
        bench_vhost() as vhost,
        tempfile.TemporaryDirectory(prefix="lw-bench-load-") as tmp,
        SmtpServer() as smtp,
    ):
        url = vhost.url()
        config = chaos_config(Path(tmp) / "loginwatch.toml", url, smtp.port, flood_max=flood_max)
        setup(config)
        publisher = Paced(url, 0)
        best, steps = 0.0, []
        with workers(config, Path(tmp) / "logs", 1):
            for _ in range(4 if quick else 7):
                with DepthProbe(url) as probe:
                    achieved = publisher.run(rate, step_s)
                    time.sleep(1.5)
                held = _held(probe.samples, rate)
                end = probe.samples[-1] if probe.samples else None
                steps.append({"rate": round(achieved), "end_depth": end, "held": held})
                _drain(url)
                if held:
                    best, rate = achieved, rate * 1.5
                elif rate > best * 1.2 and best:
                    rate = (rate + best) / 2  # one finer step between the last two
                else:
                    break
            figures["load_steps"] = steps
            figures["max_sustained_events_per_s"] = round(best)
            # 10,000 distinct hosts at 80 % of the sustained rate.
            target = max(10.0, 0.8 * best)
            seconds = min(HOSTS / target, 30.0 if quick else 120.0)
            publisher.next = 0
            sent_before = len(smtp.messages)
            with DepthProbe(url) as probe:
                started = time.monotonic()
                achieved = publisher.run(target, 1.5 * seconds, limit=round(seconds * target))
                seconds = time.monotonic() - started
                time.sleep(2)
            _drain(url)
            figures.update(
                fleet_hosts=min(HOSTS, publisher.next),
                fleet_rate_per_s=round(achieved, 1),
                fleet_seconds=round(seconds, 1),
                fleet_depth_max=max(probe.samples, default=0),
                fleet_depth_final=probe.samples[-1] if probe.samples else None,
                fleet_depth_slope_per_s=round(_slope(probe.samples), 2),
                fleet_held=_held(probe.samples, achieved),
                fleet_mails=len(smtp.messages) - sent_before,
            )
    return figures


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:]), indent=2))
