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
  alone, one commit per mail), in batches of ``BATCH``;
- ``*_digest_intake_events_per_s``: the digest scheduler's intake (``Intake.store``: the
  events' rows and their first-seen in one transaction) in batches of ``INTAKE_BATCH``.

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

from consumer.broker.delivery import Delivery
from consumer.digest.intake import Intake
from consumer.digest.lease import Lease
from consumer.digest.tables import DigestStore
from consumer.stages.enrich import Enricher
from consumer.store import Store, StoreBatch, open_store
from schemas.config import EnrichConfig, WorkerConfig, parse_config
from schemas.event import LoginEvent, encode
from tests.support.factories import T0, event
from tests.support.pg import pg_schema

BATCH = WorkerConfig().prefetch
INTAKE_BATCH = 100
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


def intake_work(store: Store, events: list[LoginEvent]) -> float:
    """Seconds for the digest intake to store ``events`` in batches of ``INTAKE_BATCH``."""
    config = parse_config('[[route]]\nto = ["ops@example.org"]\nmode = "digest"\n')
    digests = DigestStore(store)
    intake = Intake(config, digests, store, Lease(digests, "bench", 30))
    batch = [Delivery(n, encode(e), "login", False, user_id=f"host-{e.host}")
             for n, e in enumerate(events)]  # fmt: skip
    started = time.perf_counter()
    for start in range(0, len(batch), INTAKE_BATCH):
        intake.store(batch[start : start + INTAKE_BATCH], T0 + timedelta(minutes=1))
    return time.perf_counter() - started


def bench_store(count: int = 2000) -> dict[str, float | str]:
    figures: dict[str, float | str] = {"count": count, "batch": BATCH}
    cases: dict[str, Callable[[Store, list[LoginEvent]], float]] = {
        "events_per_s": lambda s, e: store_work(s, e, BATCH, mail=False),
        "one_at_a_time_events_per_s": lambda s, e: store_work(s, e, 1, mail=False),
        "mail_events_per_s": lambda s, e: store_work(s, e, BATCH, mail=True),
        "digest_intake_events_per_s": intake_work,
    }
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, pg_schema() as pg_url:
        urls = {"sqlite": f"{tmp}/bench.db"}
        if pg_url is not None:
            urls["postgres"] = pg_url
        # As each opens it: the worker's store is not durable (SQLite: WAL, synchronous
        # NORMAL), the digest's is (its acks follow its commits); PostgreSQL's always are.
        stores = {name: open_store(url) for name, url in urls.items()}
        durable = {name: open_store(url, durable=True) for name, url in urls.items()}
        try:
            for round_ in range(ROUNDS):
                for n, (case, run) in enumerate(cases.items()):
                    for name in urls:
                        store = durable[name] if case.startswith("digest") else stores[name]
                        events = logins(count, round_ * len(cases) + n)
                        rates.setdefault(f"{name}_{case}", []).append(count / run(store, events))
        finally:
            for store in [*stores.values(), *durable.values()]:
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
