"""``make bench``: every loginwatch figure in one run, one table, one JSON file.

    python -m tests.bench [--quick] [--only SECTION ...] [--output bench-results.json]

Sections, each a module that also runs alone: ``hook`` (tests/bench/bench_hook.py: foreground vs
``python -c pass``, ssh login with vs without the hook, a silent broker, a PAM environment of
15,000 variables, the CPU of a 30-password spray), ``fsync`` (tests/bench/bench_fsync.py: one
durable spool write into a preallocated slot with ``fsync`` vs ``fdatasync``, vs a new file),
``login`` (tests/bench/bench_login.py: the ssh login on Debian's installed stack with no
hook, ``pam_exec /bin/true``, the Python foreground and the C front-end, interleaved, each
login's stall read from tcpdump, the hooks' own wall time), ``wire`` (bytes per event on the
wire), ``worker`` (tests/bench/bench_worker.py: throughput vs raw
pika, alert mails per second, login-to-inbox p50/p99), ``mail`` (tests/bench/bench_mail.py),
``store`` (tests/bench/bench_store.py), ``digest`` (tests/bench/bench_digest.py: one window of 1M
events, time and RSS), ``load`` (tests/bench/bench_load.py: 10,000 hosts, the maximum sustained
rate), ``machines`` (tests/bench/bench_machines.py: two workers on two network namespaces sharing
a PostgreSQL store against one, mail-per-login and digest-only), ``channels``
(tests/bench/bench_channels.py: a channel's ``deliver()`` against raw httpx to the same server,
the worker's webhook posts per second beside its mails per second).
Every ratio is measured side by side inside its section, in this one run. Figures only:
nothing here passes or fails; a section that breaks is reported with its error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from producer import capture
from producer.build import build_event
from schemas.compact import compact, pack_address
from schemas.event import encode
from schemas.records import Heartbeat
from schemas.wire import encode as wire_encode
from tests.support.hookrun import PAM_ENV

Figures = dict[str, object]


# A typical host name of a fleet: what the wire figures are measured with (issue 21's target:
# a key login from such a host in at most 160 bytes).
LONG_HOST = "web-01.prod.example.com"


def wire(_quick: bool) -> Figures:
    """The msgpack body of real hook events (what crosses the network per login), in the
    compact form the hook sends (tag 2) and in the first form (tag 1), side by side."""
    sizes: Figures = {}
    failure_env = {k: v for k, v in PAM_ENV.items() if k != "SSH_AUTH_INFO_0"}
    failure_env |= {"PAM_TYPE": "auth", "SSH_AUTH_INFO_0": "password\n"}
    cases = (("key_login", PAM_ENV, "success"), ("password_failure", failure_env, "failure"))
    for name, env, outcome in cases:
        environ = {k.encode(): v.encode() for k, v in env.items()}
        _, record = capture.record(environ, outcome, time.time_ns())
        event = build_event(capture.parse(record), LONG_HOST)
        if outcome == "success":  # the escalation link a login's hook records
            event = msgspec.structs.replace(event, audit_session=4711, login_uid=1000,
                                            session_pid=123456, session_start=98765432)  # fmt: skip
        sizes[f"wire_bytes_{name}"] = len(wire_encode(compact(event)))
        sizes[f"wire_bytes_{name}_v1"] = len(encode(event))
    beat = Heartbeat(
        id=bytes(16),
        time=datetime.now(UTC),
        host=LONG_HOST,
        hook_version="0.3.0",
        addresses=(pack_address("192.0.2.10")[0], pack_address("2001:db8::10")[0]),
    )
    sizes["wire_bytes_heartbeat"] = len(wire_encode(beat))
    return sizes


def hook(quick: bool) -> Figures:
    import os

    if quick:
        os.environ.setdefault("LW_SSH_ROUNDS", "5")
    from tests.bench import bench_hook

    if quick:
        bench_hook.ROUNDS = 10
    return dict(bench_hook.run())


def login(quick: bool) -> Figures:
    from tests.bench import bench_login

    return bench_login.measure(
        *((4, 6) if quick else (bench_login.ROUNDS, bench_login.TIMED_ROUNDS))
    )


def fsync(quick: bool) -> Figures:
    from tests.bench.bench_fsync import measure

    return dict(measure(rounds=50 if quick else 200))


def worker(quick: bool) -> Figures:
    from tests.bench import bench_worker

    if quick:
        bench_worker.EVENTS, bench_worker.ROUNDS = 500, 1
        bench_worker.MAILS, bench_worker.LOGINS = 100, 5
    return bench_worker.measure()


def mail(quick: bool) -> Figures:
    from tests.bench.bench_mail import bench_mail

    return dict(bench_mail(100 if quick else 300))


def store(quick: bool) -> Figures:
    from tests.bench.bench_store import bench_store

    return dict(bench_store(500 if quick else 2000))


def digest(quick: bool) -> Figures:
    if importlib.util.find_spec("tests.bench.bench_digest") is None:
        return {"skipped": "tests/bench/bench_digest.py (issue 4) has not landed"}
    from tests.bench.bench_digest import bench_digest

    return dict(bench_digest(100_000 if quick else 1_000_000))


def load(quick: bool) -> Figures:
    from tests.bench.bench_load import measure

    return measure(quick)


def channels(quick: bool) -> Figures:
    from tests.bench.bench_channels import measure

    return measure(quick)


def machines(quick: bool) -> Figures:
    from tests.bench.bench_machines import measure

    return measure(quick)


SECTIONS: dict[str, Callable[[bool], Figures]] = {
    "wire": wire,
    "hook": hook,
    "login": login,
    "fsync": fsync,
    "worker": worker,
    "mail": mail,
    "store": store,
    "digest": digest,
    "load": load,
    "machines": machines,
    "channels": channels,
}


def _flat(figures: Figures, prefix: str = "") -> list[tuple[str, object]]:
    """Nested figures (a backend's own dict) as ``outer.inner`` rows."""
    rows: list[tuple[str, object]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def table(results: dict[str, Figures]) -> str:
    """One aligned table: section, figure, value."""
    rows = []
    for section, figures in results.items():
        for key, value in _flat(figures):
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            rows.append((section, key, shown if len(shown) <= 60 else shown[:57] + "..."))
    width = max((len(r[1]) for r in rows), default=10)
    lines = [f"{'section':8} {'figure':{width}} value", "-" * (width + 30)]
    lines += [f"{s:8} {k:{width}} {v}" for s, k, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), metavar="SECTION")
    parser.add_argument("--output", default="bench-results.json")
    args = parser.parse_args(argv)
    for noisy in ("mail.log", "pika"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    results: dict[str, Figures] = {}
    started = time.monotonic()
    for name in args.only or list(SECTIONS):
        print(f"-- {name} ...", flush=True)
        began = time.monotonic()
        try:
            results[name] = SECTIONS[name](args.quick)
        except Exception as exc:  # one broken section must not hide the rest
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["section_seconds"] = round(time.monotonic() - began, 1)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m tests.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.node()} {platform.machine()} python {platform.python_version()}",
        "seconds": round(time.monotonic() - started, 1),
        "figures": results,
    }
    Path(args.output).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n" + table(results))
    print(f"\n{report['command']}: {report['seconds']} s; figures in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
