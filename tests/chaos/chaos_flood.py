"""Chaos: one host floods the broker for two minutes; the others' logins must not wait.

Real parts: a vhost of the shared broker with lanes and topic permissions, ``loginwatch
host add`` users, two workers, an SMTP server of our own. Four hosts whose users hash to
lanes other than the flooder's log in steadily through the producer's own channel
(``tests/support/host_logins.py``: confirmed, as the hook's publisher sends), one login
every half second each, from the start: first ``BASELINE_S`` without a flood, then
``FLOOD_S`` with one, in the same run. The flooding host publishes without confirms at a
fixed 3,500 messages a second (``tests/support/flood.py``, its own process): junk for the
first half, then valid logins under its own name, each a new user from a new source.

It passes when the four hosts' logins show 0 lost and 0 duplicate mails, and their p99
login-to-inbox time (the event's time to the SMTP server's acceptance) during the flood is
within 1 s of the p99 before it. A fifth host whose user hashes into the flooder's own lane
(if one of the candidate names does) is measured too and printed apart: it shares the
flooder's lane, which the criterion does not cover (docs/central.md, Fairness).

No digest scheduler runs: the digest queue is emptied every few seconds, so the flood's
copies there never reach its limit (a digest scheduler has its own queue and its own pace).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pika

from schemas import topology
from tests.support.chaos_support import Ledger, chaos_config, setup, wait_settled, workers
from tests.support.lanes import lane_of
from tests.support.services import fresh_vhost, rabbitmqctl
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import ROOT, loginwatch, take_all

RATE = 3500
EVERY_S = 0.5
HOSTS = 4


@dataclass(frozen=True)
class Fleet:
    """The scenario's broker, config, SMTP server and hosts."""

    url: str
    config: Path
    smtp: SmtpServer
    flooder: str
    flooded: str  # the flooder's lane
    apart: list[str]  # hosts in other lanes: the criterion
    sharing: list[str]  # a host in the flooder's lane, measured apart
    urls: dict[str, str]  # host → its user's AMQP URL


def flood(args: argparse.Namespace) -> dict[str, object]:
    baseline_s, flood_s = (20.0, 40.0) if args.quick else (60.0, 120.0)
    tag = uuid.uuid4().hex[:6]
    users: list[str] = []
    with (
        fresh_vhost("loginwatch-chaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-f-") as tmp,
        SmtpServer() as smtp,
    ):
        config = chaos_config(Path(tmp) / "loginwatch.toml", vhost.url(), smtp.port,
                              flood_max=500)  # fmt: skip
        setup(config)
        flooder = f"flood-{tag}"
        flooded = lane_of(vhost, topology.host_user(flooder))
        lanes = {f"db-{n}-{tag}": lane_of(vhost, topology.host_user(f"db-{n}-{tag}"))
                 for n in range(40)}  # fmt: skip
        apart = [name for name, lane in lanes.items() if lane != flooded][:HOSTS]
        sharing = [name for name, lane in lanes.items() if lane == flooded][:1]
        secrets = Path(tmp) / "secrets"
        urls = {}
        for name in [flooder, *apart, *sharing]:
            added = loginwatch("host", "add", name, "--config", str(config), "--secrets-dir",
                               str(secrets))  # fmt: skip
            if added.returncode != 0:
                raise RuntimeError(f"host add {name}: {added.stderr.strip()}")
            users.append(topology.host_user(name))
            password = (secrets / f"{name}.password").read_text().strip()
            urls[name] = vhost.url(topology.host_user(name), password)
        fleet = Fleet(vhost.url(), config, smtp, flooder, flooded, apart, sharing, urls)
        try:
            return _run(fleet, baseline_s, flood_s)
        finally:
            for user in users:
                rabbitmqctl("delete_user", user, check=False)


def _run(fleet: Fleet, baseline_s: float, flood_s: float) -> dict[str, object]:
    url, config, smtp, urls = fleet.url, fleet.config, fleet.smtp, fleet.urls
    apart, sharing, flooder = fleet.apart, fleet.sharing, fleet.flooder
    logs = config.parent / "logs"
    stop = threading.Event()
    emptier = threading.Thread(target=_empty_digest, args=(url, stop), daemon=True)
    emptier.start()
    steady_file = config.parent / "logins.jsonl"
    with workers(config, logs, 2):
        steady = subprocess.Popen(
            [sys.executable, "-m", "tests.support.host_logins", "--every", str(EVERY_S),
             "--seconds", str(baseline_s + flood_s + 5), "--out", str(steady_file),
             *(f"{name}={urls[name]}" for name in [*apart, *sharing])],
            cwd=ROOT,
        )  # fmt: skip
        time.sleep(baseline_s)
        flood_started = time.time()
        flooding = subprocess.Popen(
            [sys.executable, "-m", "tests.support.flood", urls[flooder], "--host", flooder,
             "--rate", str(RATE), "--phase", f"junk:{flood_s / 2}",
             "--phase", f"valid:{flood_s / 2}"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        flood_out, _ = flooding.communicate(timeout=flood_s + 120)
        flood_ended = time.time()
        steady.wait(timeout=120)
        published = [json.loads(line) for line in steady_file.read_text().splitlines()]
        ledger = Ledger("flood", {p["id"] for p in published if "id" in p})

        def refresh() -> None:
            ledger.mails = list(smtp.messages)
            ledger.logs = sorted(logs.glob("*.log"))

        wait_settled(ledger, refresh, timeout=300 if sharing else 120)
    stop.set()
    ledger.dead = take_all(url, topology.DEAD_QUEUE)
    latency = _latencies(smtp, published)

    def p(names: list[str], start: float, end: float, q: float) -> float:
        seen = sorted(s for host, t, s in latency if host in names and start <= t < end)
        return round(statistics.quantiles(seen, n=100)[int(q) - 1], 3) if len(seen) > 2 else -1

    valid_started = flood_started + flood_s / 2
    before = p(apart, 0, flood_started, 99)
    during = p(apart, flood_started, flood_ended, 99)
    ledger.notes.update({
        "flood": [json.loads(line) for line in flood_out.splitlines()],
        "flooder_lane": fleet.flooded,
        "hosts_in_other_lanes": len(apart),
        "logins_before": sum(1 for host, t, _ in latency if host in apart and t < flood_started),
        "logins_during": sum(1 for host, t, _ in latency
                             if host in apart and flood_started <= t < flood_ended),
        "logins_after": sum(1 for host, t, _ in latency if host in apart and t >= flood_ended),
        "p50_before_s": p(apart, 0, flood_started, 50),
        "p99_before_s": before,
        "p50_during_s": p(apart, flood_started, flood_ended, 50),
        "p99_during_s": during,
        "p99_within_1s": during <= before + 1.0,
        "same_lane_host_p99_junk_s": p(sharing, flood_started, valid_started, 99),
        "same_lane_host_p99_valid_s": p(sharing, valid_started, flood_ended, 99),
        "publish_errors": [line["error"] for line in published if "error" in line][:5],
    })  # fmt: skip
    if not during <= before + 1.0:
        ledger.notes["error"] = f"p99 during the flood {during} s > {before} s + 1 s"
    return ledger.figures()


def _latencies(
    smtp: SmtpServer, published: list[dict[str, object]]
) -> list[tuple[str, float, float]]:
    """(host, event time, seconds from the event to the mail's acceptance) per mailed login."""
    sent = {str(p["id"]): (str(p["host"]), float(str(p["time"]))) for p in published if "id" in p}
    found = []
    with smtp.lock:
        for received, arrived in zip(smtp.messages, smtp.arrived, strict=True):
            ident = received.message["X-Loginwatch-Event"]
            if ident in sent:
                host, stamp = sent[ident]
                found.append((host, stamp, arrived - stamp))
    return found


def _empty_digest(url: str, stop: threading.Event) -> None:
    """No scheduler here: empty the digest queue now and then, so it never drops its oldest."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while not stop.is_set():
            channel.queue_purge(topology.DIGEST_QUEUE)
            connection.sleep(2.0)
