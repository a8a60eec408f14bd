"""Benchmark: the store's cost per event in the worker (first-seen + flood state).

``python -m tests.bench.bench_store [COUNT]`` prints one JSON line: events per second through
``Enricher`` (DNS off, so only the store works) plus ``flood_state``, on SQLite (a file in
a temporary directory) and on PostgreSQL (a throwaway schema in $LOGINWATCH_TEST_PG, when
reachable). No assertions: figures only.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from consumer.stages.enrich import Enricher
from consumer.store import open_store
from schemas.config import EnrichConfig
from tests.support.factories import T0, event
from tests.support.pg import pg_schema


def rate(url: str, count: int) -> float:
    events = [
        event(client_ip=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", user=f"u{n % 50}")
        for n in range(count)
    ]
    with open_store(url) as store:
        enricher = Enricher(EnrichConfig(dns=False), store)
        started = time.perf_counter()
        for login in events:
            enricher(login, T0)
            store.flood_state(T0, 600, host="web-01", kind="login")
        return round(count / (time.perf_counter() - started), 1)


def bench_store(count: int = 2000) -> dict[str, float | str]:
    figures: dict[str, float | str] = {"count": count}
    with tempfile.TemporaryDirectory() as tmp:
        figures["sqlite_events_per_s"] = rate(f"{tmp}/bench.db", count)
    with pg_schema() as url:
        if url is None:
            figures["postgres_events_per_s"] = "skipped: no PostgreSQL"
            return figures
        figures["postgres_events_per_s"] = rate(url, count)
    return figures


if __name__ == "__main__":
    print(json.dumps(bench_store(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
