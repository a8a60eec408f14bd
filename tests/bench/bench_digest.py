"""Benchmark: aggregate and render one digest window of 1,000,000 stored events, 1,000 hosts.

``python -m tests.bench.bench_digest [COUNT]`` bulk-loads COUNT events (SQLite: one executemany
transaction; PostgreSQL: COPY into a throwaway schema) spread over one day from 1,000
hosts, then measures, in a fresh subprocess, the time to aggregate the window for one
recipient and to render its mail, and that subprocess's peak RSS (``os.wait4``'s rusage:
the loader's memory is not counted; PostgreSQL's own server processes are not either).
Prints one JSON line. Targets (issue 4): <= 10 s, <= 256 MB. No assertions: figures only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from consumer.digest.windows import window_at
from consumer.store import open_store
from tests.support.digest_support import DAY1, digests_for, make_config
from tests.support.pg import pg_schema

HOSTS = 1000
ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("event_id", "at", "host", "username", "kind", "client_ip", "rhost", "auth_method",
           "dropped", "audience")  # fmt: skip
KINDS = ("login", "login", "login", "failure", "failure", "logout", "login", "logout")


def rows(count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` events over DAY1's window: logins, failures (a few loud sources), logouts."""
    start = int(DAY1.timestamp())
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        user = "root" if i % 97 == 0 else f"user{i % 300}"
        source = f"203.0.113.{i % 7}" if kind == "failure" else f"10.{i % 50}.{i % 200}.{i % 250}"
        yield (f"{i:032x}", start + i * 86400 // count, f"host-{i % HOSTS:04d}", user, kind,
               source, "", "publickey", 1 if i % 10007 == 0 else 0, "ops@example.com")  # fmt: skip


def first_seen(count: int) -> list[tuple[Any, ...]]:
    """The worker's first-seen rows: the first login of each (user, address) pair."""
    seen: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows(count):
        if row[4] == "login" and (row[3], row[5]) not in seen:
            seen[row[3], row[5]] = (row[3], "address", row[5], row[0], row[1], row[1])
    return list(seen.values())


FIRST_SEEN = ("INSERT INTO first_seen (username, scope, value, event_id, first_at, last_at)"
              " VALUES (?, ?, ?, ?, ?, ?)")  # fmt: skip


def load_sqlite(path: str, count: int) -> float:
    open_store(path).close()  # migrated
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    marks = ", ".join("?" * len(COLUMNS))
    conn.executemany(f"INSERT INTO digest_event ({', '.join(COLUMNS)}) VALUES ({marks})",
                     rows(count))  # fmt: skip
    conn.executemany(FIRST_SEEN, first_seen(count))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def load_postgres(url: str, count: int) -> float:
    open_store(url).close()
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY digest_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows(count):
                    copy.write_row(row)
            cursor.executemany(FIRST_SEEN.replace("?", "%s"), first_seen(count))
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def measure(url: str) -> dict[str, float]:
    """In the measured subprocess: aggregate, then render, one window for one recipient."""
    digests = digests_for(make_config(url))
    window = window_at(digests.schedule, DAY1)
    started = time.perf_counter()
    summary = digests.summaries(window, dead=0)["ops@example.com"]
    aggregated = time.perf_counter()
    msg = digests.renderer.render(digests.view(summary))
    rendered = time.perf_counter()
    digests.store.store.close()
    return {
        "events": summary.total,
        "first_seen": summary.first_seen.total,
        "aggregate_s": round(aggregated - started, 2),
        "render_s": round(rendered - aggregated, 3),
        "mail_bytes": len(msg.as_bytes()),
    }


def in_subprocess(url: str) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_digest", "--measure", url],
                            stdout=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    figures: dict[str, Any] = json.loads(out)
    figures["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    return figures


def bench_digest(count: int = 1_000_000) -> dict[str, Any]:
    figures: dict[str, Any] = {"events": count, "hosts": HOSTS}
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bench.db"
        figures["sqlite_load_s"] = round(load_sqlite(path, count), 1)
        figures["sqlite"] = in_subprocess(path)
    with pg_schema() as url:
        if url is None:
            figures["postgres"] = "skipped: no PostgreSQL"
            return figures
        figures["postgres_load_s"] = round(load_postgres(url, count), 1)
        figures["postgres"] = in_subprocess(url)
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(sys.argv[2])))
    else:
        print(json.dumps(bench_digest(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)))
