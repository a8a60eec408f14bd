"""Chaos for the digest scheduler: ``kill -9`` at random points across 20 windows.

Short windows (``[digest] every`` of a few seconds, a 2 s lease so a restarted scheduler
takes over quickly), events flowing all along, and the scheduler killed again and again:
from outside at random moments, and from inside at the state boundaries of sending
(``LOGINWATCH_TEST_CRASH_AT``: after-claim, after-smtp, after-record). Then one clean
scheduler finishes. Every window from the first to the last must have exactly one digest
— one ``Message-ID`` under its ``X-Loginwatch-Digest`` window key — and no window may be
missing between them.

Between kills, steady intake: each new scheduler, once it consumes, gets a batch published
to it, and all of it must be stored with nothing ready or unacked on ``loginwatch.digest``
(``rabbitmqctl``) within ``INTAKE_S`` — else the scenario fails (counted as lost). A check
that a scheduler's own crash point cut short is counted apart (``interrupted``), and so is a
scheduler that was not consuming yet within ``INTAKE_S`` (``slow_start``: nothing published).

A kill between the SMTP server's 250 and the sent-log write cannot be told from a kill
just before the 250: the restarted scheduler sends that digest again, *with the same
Message-ID*, which mail stores fold into one. Those repeated transactions are counted and
printed (``resent_same_message_id``); a second digest — another Message-ID for a window —
is a duplicate and fails the scenario.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from tests.support.chaos_support import chaos_config, mixed_event, publish_events, setup
from tests.support.queue_counts import counts, wait_until
from tests.support.services import fresh_vhost
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import ROOT

CRASH_POINTS = ("", "", "after-claim", "after-smtp", "after-record")
INTAKE_BATCH = 5
INTAKE_S = 12.0  # a lease to expire (2 s), a start (~2 s on 2 loaded cores), a few ticks


def scheduler(config: Path, log: Path, crash_at: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LOGINWATCH_TEST_CRASH_AT", None)
    if crash_at:
        env["LOGINWATCH_TEST_CRASH_AT"] = crash_at
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "digest", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip


def _flow(url: str, until: float, paused: threading.Event) -> None:
    """A few events a second, so windows have something to summarise (none while
    ``paused``: an intake check needs a moment when nothing new is on its way)."""
    n = 0
    while time.monotonic() < until:
        if not paused.is_set():
            n += publish_events(url, (mixed_event(n + k) for k in range(3)))
        time.sleep(1)


def _stored(db: Path, ids: list[str]) -> int:
    with sqlite3.connect(db, timeout=5) as connection:
        try:
            marks = ",".join("?" * len(ids))
            query = f"SELECT COUNT(*) FROM digest_event WHERE event_id IN ({marks})"
            return int(connection.execute(query, ids).fetchone()[0])
        except sqlite3.OperationalError:  # not created yet, or busy
            return 0


def intake_check(
    vhost: str,
    url: str,
    db: Path,
    proc: subprocess.Popen[bytes],
    n: int,
    *,
    paused: threading.Event,
) -> str:
    """Publish a batch to the running scheduler ``proc`` (the flow paused): "ok" when all
    of it is stored and nothing is ready or unacked within INTAKE_S, "interrupted" when
    ``proc`` ended on its own meanwhile, "slow_start" when ``proc`` did not consume within
    INTAKE_S (no batch published: a start slower than the bound on loaded cores), else
    "failed"."""
    paused.set()
    try:
        return _intake_check(vhost, url, db, proc, n)
    finally:
        paused.clear()


def _intake_check(vhost: str, url: str, db: Path, proc: subprocess.Popen[bytes], n: int) -> str:
    if not wait_until(lambda: proc.poll() is not None
                      or counts(vhost, "loginwatch.digest").consumers == 1, INTAKE_S):  # fmt: skip
        return "slow_start"  # nothing published to it: printed, not counted as lost
    if proc.poll() is not None:
        return "interrupted"
    batch = [mixed_event(n + k, host="web-00") for k in range(INTAKE_BATCH)]
    publish_events(url, batch)
    ids = [e.id_hex for e in batch]

    def caught_up() -> bool:
        if proc.poll() is not None:
            return True
        left = counts(vhost, "loginwatch.digest")
        return _stored(db, ids) == len(ids) and (left.ready, left.unacked) == (0, 0)

    if not wait_until(caught_up, INTAKE_S, step=0.3):
        return "failed"
    return "interrupted" if proc.poll() is not None else "ok"


def _key_times(key: str) -> tuple[datetime, datetime]:
    start, end = key.split("-")
    return (datetime.strptime(start, "%Y%m%dT%H%M%S%z"), datetime.strptime(end, "%Y%m%dT%H%M%S%z"))


def _windows(data: list[bytes]) -> tuple[Counter[str], Counter[str]]:
    """(SMTP copies per window key, digests — distinct Message-IDs — per window key),
    each window counted for one recipient: the first one seen."""
    copies: Counter[str] = Counter()
    ids: dict[str, set[str]] = {}
    first_to: dict[str, str] = {}
    for raw in data:
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        key, to = str(mail["X-Loginwatch-Digest"] or ""), str(mail["To"] or "")
        if not key or first_to.setdefault(key, to) != to:
            continue
        copies[key] += 1
        ids.setdefault(key, set()).add(str(mail["Message-ID"]).strip())
    return copies, Counter({key: len(found) for key, found in ids.items()})


def digest_kills(args: argparse.Namespace) -> dict[str, object]:
    windows, every = 20, (2 if args.quick else 5)
    rng = random.Random(20)
    started = time.monotonic()
    with (
        fresh_vhost("loginwatch-chaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-g-") as tmp,
        SmtpServer() as smtp,
    ):
        digest = f'[digest]\nevery = "{every}s"\nlease = "2s"\nempty = "quiet"\n'
        config = chaos_config(Path(tmp) / "loginwatch.toml", vhost.url(), smtp.port, extra=digest)
        setup(config)
        log = Path(tmp) / "digest.log"
        end = time.monotonic() + windows * every
        paused = threading.Event()
        flow = threading.Thread(target=_flow, args=(vhost.url(), end, paused), daemon=True)
        flow.start()
        kills: Counter[str] = Counter()
        intake: Counter[str] = Counter()
        while time.monotonic() < end:
            point = rng.choice(CRASH_POINTS)
            proc = scheduler(config, log, point)
            first = 10_000_000 + 100 * sum(intake.values())  # event numbers of its batch
            db = Path(tmp) / "store.db"
            intake[intake_check(vhost.name, vhost.url(), db, proc, first, paused=paused)] += 1
            try:
                proc.wait(rng.uniform(0.5, 2.5 * every))
                kills[f"self at {point}"] += 1  # it reached its crash point
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL from outside, wherever it was
                proc.wait()
                kills["kill -9 from outside"] += 1
        flow.join()
        final = scheduler(config, log, "")
        time.sleep(3 * every + 4)  # the lease of the last victim expires; due windows go out
        final.send_signal(signal.SIGTERM)
        final.wait(30)
        copies, counts = _windows([m.data for m in smtp.messages])
    ordered = sorted(counts, key=_key_times)
    gaps = [f"{a} → {b}" for a, b in pairwise(ordered) if _key_times(a)[1] != _key_times(b)[0]]
    return {
        "windows": len(counts),
        "kills": dict(kills),
        "digests_received": sum(counts.values()),
        "resent_same_message_id": sum(copies.values()) - sum(counts.values()),
        "windows_with_one_digest": sum(n == 1 for n in counts.values()),
        "windows_with_two_or_more": sum(n > 1 for n in counts.values()),
        "missing_windows": len(gaps),
        "gaps_between": gaps,
        "duplicated_windows": [k for k, n in counts.items() if n > 1],
        "intake_checks": dict(intake),
        "lost": len(gaps) + intake["failed"],
        "duplicate_mails": sum(n - 1 for n in counts.values()),
        "seconds": round(time.monotonic() - started, 1),
    }
