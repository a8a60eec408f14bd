"""Benchmark: the store's cost per event in the worker, SQLite against PostgreSQL.

``python -m tests.bench.bench_store [COUNT]`` prints one JSON line. Each figure is events per
second through the store work of the worker's pipeline (``consumer/store/batch.py``: the
enrich stage's first-seen writes, DNS off, and the flood counts the policy decides on), on
SQLite (a file in a temporary directory) and PostgreSQL (a throwaway schema in
$LOGINWATCH_TEST_PG, when reachable), rounds interleaved, medians:

- ``*_events_per_s``: events the policy does not mail about (digest, folded), in batches of
  ``BATCH`` (what one worker takes at its default prefetch);
- ``*_one_at_a_time_events_per_s``: the same, one event per batch;
- ``*_mail_events_per_s``: every event mailed (no SMTP: check-before and record-after
  alone, one commit per mail), in batches of ``BATCH``.

No assertions: figures only.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from consumer.stages.enrich import Enricher
from consumer.store import Store, StoreBatch, open_store
from schemas.config import EnrichConfig, WorkerConfig
from schemas.event import LoginEvent
from tests.support.factories import T0, event
from tests.support.pg import pg_schema

BATCH = WorkerConfig().prefetch
ROUNDS = 3
WINDOW = 600.0


def logins(count: int, round_: int) -> list[LoginEvent]:
    """``count`` logins of 50 users from addresses no earlier round used."""
    return [
        event(client_ip=f"10.{round_}.{n // 256 % 256}.{n % 256}", user=f"u{n % 50}", tty=f"{n}")
        for n in range(count)
    ]


def store_work(store: Store, events: list[LoginEvent], size: int, mail: bool) -> float:
    """Seconds for the pipeline's store work on ``events`` in batches of ``size``."""
    enricher = Enricher(EnrichConfig(dns=False), store)
    started = time.perf_counter()
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        now = T0 + timedelta(seconds=start // 100)
        placed = [enricher.placed(e, now) for e in chunk]
        work = store.batch(
            [enricher.sighting(p, now) for p in placed],
            budgets=[(e.host, e.kind) for e in chunk],
            now=now,
            window=WINDOW,
        )
        for login in chunk:
            work.flood_state(now, host=login.host, kind=login.kind)
            if mail:
                _mail(work, login, now)
        work.flush()
    return time.perf_counter() - started


def _mail(work: StoreBatch, login: LoginEvent, now: datetime) -> None:
    key = f"alert:{login.id_hex}:ops@example.org"
    work.check(now, host=login.host, kind=login.kind, keys=[key])
    if not work.was_sent(key):
        work.record_sent(key, now, recipient="ops@example.org", host=login.host,
                         kind=login.kind, burst=None)  # fmt: skip


def bench_store(count: int = 2000) -> dict[str, float | str]:
    figures: dict[str, float | str] = {"count": count, "batch": BATCH}
    cases: dict[str, Callable[[Store, list[LoginEvent]], float]] = {
        "events_per_s": lambda s, e: store_work(s, e, BATCH, mail=False),
        "one_at_a_time_events_per_s": lambda s, e: store_work(s, e, 1, mail=False),
        "mail_events_per_s": lambda s, e: store_work(s, e, BATCH, mail=True),
    }
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, pg_schema() as pg_url:
        urls = {"sqlite": f"{tmp}/bench.db"}
        if pg_url is not None:
            urls["postgres"] = pg_url
        stores = {name: open_store(url) for name, url in urls.items()}
        try:
            for round_ in range(ROUNDS):
                for n, (case, run) in enumerate(cases.items()):
                    for name, store in stores.items():
                        events = logins(count, round_ * len(cases) + n)
                        rates.setdefault(f"{name}_{case}", []).append(count / run(store, events))
        finally:
            for store in stores.values():
                store.close()
    for key, values in rates.items():
        figures[key] = round(statistics.median(values), 1)
    if pg_url is None:
        figures["postgres_events_per_s"] = "skipped: no PostgreSQL"
        return figures
    for case in cases:
        ratio = float(figures[f"postgres_{case}"]) / float(figures[f"sqlite_{case}"])
        figures[f"postgres_vs_sqlite_{case.removesuffix('_per_s')}"] = round(ratio, 2)
    return figures


if __name__ == "__main__":
    print(json.dumps(bench_store(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
