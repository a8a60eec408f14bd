"""Benchmark: what the detections cost the worker's pipeline. Figures, no assertions.

Batches of 16 digest-only key logins (new users, new sources: the first-seen writes a
worker does for each) through ``pipeline.process_batch`` on one store, with the
detections as the worker runs them (failure counts, the user's place, a login's links,
written and read in the batch's first round trip) and with them switched off, interleaved
in the same run, medians of rounds; SQLite, and PostgreSQL when one is reachable. The
ratio is what the detections cost; round trips per batch are counted too.

Run alone: ``.venv/bin/python -m tests.bench.bench_detect``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from consumer.alerts.detecting import BatchDetections, Detecting
from consumer.alerts.pipeline import Stages, process_batch
from consumer.core.enriched import Enriched
from consumer.core.identity import Identity
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Store, open_store
from schemas.config import Config, parse_config
from schemas.event import encode
from tests.support.factories import T0, books, event
from tests.support.fakes import Outbox

BATCH = 16
ROUNDS = 7
BATCHES = 20

CONFIG = """
[enrich]
dns = false
[[route]]
to = ["ops@example.org"]
mode = "digest"
"""


class Off(Detecting):
    """The detections switched off: no reads, no writes, nothing found."""

    def batch(self, placed: Sequence[Enriched], now: Any) -> BatchDetections:
        return BatchDetections(self, [], now)


def stages(store: Store, config: Config, detecting: Detecting) -> Stages:
    kit = books(store, config)
    kit["detecting"] = detecting
    return Stages(decode=Decoder(Identity()), enrich=Enricher(config.enrich, store),
                  policy=Policy(config), render=Renderer(config), send=Outbox(), store=store,
                  clock=lambda: T0, **kit)  # fmt: skip


def run(built: Stages, start: int) -> float:
    """Seconds per event for BATCHES batches of new logins, numbered from ``start``."""
    began = time.perf_counter()
    for b in range(BATCHES):
        n0 = start + b * BATCH
        batch = [Incoming(encode(event(user=f"u{n}", client_ip=f"10.{n >> 16 & 255}."
                                       f"{n >> 8 & 255}.{n & 255}", session_pid=1000 + n,
                                       session_start=n, audit_session=n + 1,
                                       time=T0 + timedelta(seconds=n))), "guest")
                 for n in range(n0, n0 + BATCH)]  # fmt: skip
        process_batch(built, batch)
    return (time.perf_counter() - began) / (BATCHES * BATCH)


def measure(url: str) -> dict[str, float]:
    config = parse_config(CONFIG + f'[store]\nurl = "{url}"\n')
    store = open_store(url)
    try:
        on, off = stages(store, config, Detecting(config, store.quota)), stages(
            store, config, Off(config, store.quota))  # fmt: skip
        run(on, 10_000_000), run(off, 20_000_000)  # warm up
        with_, without = [], []
        for r in range(ROUNDS):
            with_.append(run(on, r * 2 * BATCHES * BATCH))
            without.append(run(off, (r * 2 + 1) * BATCHES * BATCH))
        a, b = statistics.median(with_), statistics.median(without)
        trips = count_trips(store, on)
    finally:
        store.close()
    return {"events_per_s_with": round(1 / a), "events_per_s_without": round(1 / b),
            "cost_ratio": round(a / b, 3), "round_trips_per_batch_with": trips}  # fmt: skip


def count_trips(store: Store, built: Stages) -> int:
    calls = 0
    batch, execute = store.db.batch, store.db.execute

    def counted_batch(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return batch(*args, **kw)

    def counted_execute(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return execute(*args, **kw)

    store.db.batch, store.db.execute = counted_batch, counted_execute  # type: ignore[method-assign]
    run(built, 90_000_000)
    store.db.batch, store.db.execute = batch, execute  # type: ignore[method-assign]
    return round(calls / BATCHES)


def main() -> None:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        figures["sqlite"] = measure(str(Path(tmp) / "bench.db"))
    try:
        from tests.support import pg

        with pg.schemas() as new_url:
            figures["postgres"] = measure(new_url())
    except Exception as exc:  # no PostgreSQL here: SQLite's figures alone
        figures["postgres"] = f"skipped: {type(exc).__name__}: {exc}"[:200]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
