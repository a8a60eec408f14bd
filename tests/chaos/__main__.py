"""``make chaos``: the pipeline under fire, each scenario bounded and accounted for.

    python -m tests.chaos [--quick] [--smtp-down SECONDS] [--webhook-down SECONDS] [SCENARIO ...]

Scenarios (default: all, in this order): ``workers`` (kill -9 of a worker every few seconds
while events flow, two workers), ``smtp`` (the SMTP server down, then flaky), ``webhook`` (a
Standard Webhooks receiver down, then flaky: tests/chaos/chaos_webhook.py), ``disk`` (a
host's spool on a full disk), ``digest`` (the digest scheduler killed at random points),
``broker`` (a private RabbitMQ node stopped, then killed, during a storm of hook runs from
ten hosts), ``node`` (a private three-node cluster: ``kill -9`` of the node leading the
alerts queue during a storm of hook runs, two workers; restarted later), ``machine`` (two
central machines, network namespaces sharing a private PostgreSQL: every process of the one
with the active digest scheduler killed), ``flood`` (one host floods at 3,500 messages a second
for two minutes, junk then valid logins; the other hosts' logins: 0 lost, 0 duplicates, and
p99 login-to-inbox within 1 s of the p99 without the flood, measured in the same run). Each
prints: events sent, mailed, digest-only, ignored, dead (with reasons), lost and duplicate
mails (tests/support/chaos_support.py says how each is established), and all go to
``chaos-results.json``. Loopback, private mount namespaces and our own network namespaces
only; the shared broker is only used through throwaway vhosts, never stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from schemas import topology
from tests.chaos.chaos_cluster import node_loss
from tests.chaos.chaos_digest import digest_kills
from tests.chaos.chaos_flood import flood
from tests.chaos.chaos_hosts import broker_restarts, spool_disk_full
from tests.chaos.chaos_machine import machine_kill
from tests.chaos.chaos_webhook import webhook_outage
from tests.support.chaos_support import (
    Ledger,
    chaos_config,
    mixed_event,
    print_report,
    publish_events,
    setup,
    wait_settled,
    workers,
)
from tests.support.services import fresh_vhost
from tests.support.smtp_server import DROP, SmtpServer, free_port
from tests.support.worker_helpers import WorkerProcess, take_all

Scenario = Callable[[argparse.Namespace], dict[str, object]]


def worker_kills(args: argparse.Namespace) -> dict[str, object]:
    """Two workers, one of them ``kill -9``-ed every 1–3 s while the events flow."""
    count = 2000 if args.quick else 10_000
    rng = random.Random(6)
    with (
        fresh_vhost("loginwatch-chaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-w-") as tmp,
        SmtpServer() as smtp,
    ):
        config = chaos_config(Path(tmp) / "loginwatch.toml", vhost.url(), smtp.port)
        setup(config)
        events = [mixed_event(n) for n in range(count)]
        ledger = Ledger("workers", {e.id_hex for e in events})
        logs = Path(tmp) / "logs"
        publisher = threading.Thread(target=publish_events, args=(vhost.url(), events))

        def refresh() -> None:
            ledger.mails = list(smtp.messages)
            ledger.logs = sorted(logs.glob("*.log"))

        kills = 0
        with workers(config, logs, 2) as running:
            publisher.start()
            deadline = time.monotonic() + (150 if args.quick else 600)
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(1, 3))
                victim = rng.randrange(len(running))
                running[victim].kill()  # SIGKILL: no goodbye, unacked deliveries come back
                kills += 1
                running[victim] = WorkerProcess(config, logs / f"worker-{kills + 1}.log")
                refresh()
                if not publisher.is_alive() and ledger.settled():
                    break
            publisher.join()
            wait_settled(ledger, refresh, timeout=120)
        ledger.dead = take_all(vhost, topology.DEAD_QUEUE)
        ledger.notes["worker_kills"] = kills
        return ledger.figures()


def _retry_delays(outage: float) -> list[int]:
    """Doubling retry delays whose sum outlasts the outage twice over."""
    delays = [2]
    while sum(delays) < 2 * outage + 10:
        delays.append(delays[-1] * 2)
    return delays


def smtp_outage(args: argparse.Namespace) -> dict[str, object]:
    """The SMTP server down for ``--smtp-down`` seconds, then back but flaky (421s, drops)."""
    count = 60 if args.quick else 200
    down = args.smtp_down if args.smtp_down is not None else (20 if args.quick else 120)
    port = free_port()
    servers = [SmtpServer(port=port).start()]
    with (
        fresh_vhost("loginwatch-chaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-s-") as tmp,
    ):
        delays = _retry_delays(down)
        config = chaos_config(Path(tmp) / "loginwatch.toml", vhost.url(), port, retry_delays=delays)
        setup(config)
        events = [mixed_event(n) for n in range(count)]
        ledger = Ledger("smtp", {e.id_hex for e in events})
        logs = Path(tmp) / "logs"

        def refresh() -> None:
            ledger.mails = [m for s in servers for m in s.messages]
            ledger.logs = sorted(logs.glob("*.log"))

        with workers(config, logs, 2):
            publish_events(vhost.url(), events[: count // 4])  # some mail before the outage
            time.sleep(2)
            servers[0].stop()
            outage_start = time.monotonic()
            publish_events(vhost.url(), events[count // 4 : count // 2])
            time.sleep(down / 2)
            publish_events(vhost.url(), events[count // 2 :])
            time.sleep(max(0.0, down - (time.monotonic() - outage_start)))
            flaky = SmtpServer(port=port)
            calm, injected = threading.Event(), Counter[str]()
            flaking = threading.Thread(
                target=_flake, args=(flaky, count // 3, calm, injected), daemon=True
            )
            servers.append(flaky.start())
            flaking.start()
            ledger.notes["smtp_down_s"] = round(time.monotonic() - outage_start, 1)
            ledger.notes["retry_delays_s"] = delays
            wait_settled(ledger, refresh, timeout=sum(delays) + 120)
            calm.set()
        refresh()
        ledger.dead = take_all(vhost, topology.DEAD_QUEUE)
        ledger.notes["smtp_data_commands"] = sum(s.attempts for s in servers)
        ledger.notes["faults_injected"] = dict(injected)
        for server in servers[1:]:
            server.stop()
        return ledger.figures()


def _flake(server: SmtpServer, faults: int, calm: threading.Event, log: Counter[str]) -> None:
    """Now and then the next DATA gets a 421 or a dropped connection, interleaved with
    accepted mails (the fixture consumes one fault per DATA, in order)."""
    rng = random.Random(3)
    while faults > 0 and not calm.wait(0.2):
        with server.lock:
            if not server.faults and rng.random() < 0.5:
                fault = rng.choice(["421 4.3.2 busy, try again later", DROP])
                server.faults.append(fault)
                log["drop" if fault == DROP else "421"] += 1
                faults -= 1


SCENARIOS: dict[str, Scenario] = {
    "workers": worker_kills,
    "smtp": smtp_outage,
    "webhook": webhook_outage,
    "disk": spool_disk_full,
    "digest": digest_kills,
    "broker": broker_restarts,
    "node": node_loss,
    "machine": machine_kill,
    "flood": flood,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="smaller numbers (under 3 minutes)")
    parser.add_argument("--smtp-down", type=float, help="SMTP outage in seconds (default 120)")
    parser.add_argument(
        "--webhook-down", type=float, help="webhook receiver outage in seconds (default 120)"
    )
    parser.add_argument("--output", default="chaos-results.json")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r} (choose from {', '.join(SCENARIOS)})")
    for noisy in ("mail.log", "pika"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    results: dict[str, dict[str, object]] = {}
    failed = False
    for name in args.scenarios or list(SCENARIOS):
        print(f"-- {name} ...", flush=True)
        try:
            results[name] = SCENARIOS[name](args)
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        figures = results[name]
        print_report(name, figures)
        failed |= "error" in figures or not (
            "skipped" in figures
            or (
                figures.get("lost") == 0
                and figures.get("duplicate_mails", 0) == 0
                and figures.get("duplicates_outside_window", 0) == 0
            )
        )
    Path(args.output).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nresults in {args.output}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
