"""Shared pieces of the benchmarks: a private vhost and figure helpers."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.services import Vhost, rabbitmqctl


@contextmanager
def bench_vhost() -> Iterator[Vhost]:
    """A RabbitMQ vhost for one benchmark run, deleted afterwards."""
    name = f"loginwatch-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield Vhost(name)
    finally:
        rabbitmqctl("delete_vhost", name, check=False)


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile_ms(seconds: list[float], pct: float) -> float:
    ordered = sorted(seconds)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index] * 1000
