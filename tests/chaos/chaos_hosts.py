"""Chaos on the host side: a broker that restarts and crashes under a storm of real hook
runs, and a spool on a full disk. Both run the real ``loginwatch-hook`` as pam_exec would."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pika

from producer.hook import FOREGROUND_BOUND_S
from schemas import topology
from schemas.wire import decode_event as decode
from tests.chaos.chaos_digest import scheduler as digest_scheduler
from tests.chaos.chaos_node import ChaosNode
from tests.support import hookrun
from tests.support.chaos_support import Ledger, chaos_config, setup, wait_settled, workers
from tests.support.services import fresh_vhost
from tests.support.smtp_server import Received, SmtpServer
from tests.support.worker_helpers import take_all

TAP = "chaos.tap"


def _declare_tap(url: str) -> None:
    """A durable quorum queue bound like the work queues: it survives the node's crash and
    keeps a copy of every event that reached the broker (the digest queue has a single
    active consumer, so it cannot be read aside)."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(TAP, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(TAP, topology.EXCHANGE, topology.BINDING_KEY)


class Storm:
    """``hosts`` threads, each running the hook ``runs`` times for its own host."""

    def __init__(self, configs: list[Path], runs: int) -> None:
        self.configs, self.runs = configs, runs
        self.times: list[float] = []
        self.exits: Counter[int] = Counter()
        self.lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self.configs) * self.runs

    def done(self) -> int:
        with self.lock:
            return len(self.times)

    def host(self, index: int) -> None:
        for n in range(self.runs):
            env = dict(hookrun.PAM_ENV, PAM_TTY=f"s{index}-{n}")
            run = hookrun.run_hook(self.configs[index], env=env)
            with self.lock:
                self.times.append(run.seconds)
                self.exits[run.returncode] += 1

    def wait_for(self, fraction: float) -> None:
        while self.done() < self.total * fraction:
            time.sleep(0.1)


def _disrupt(node: ChaosNode, storm: Storm, log: list[str]) -> None:
    """stop_app → start_app a quarter in, ``kill -9`` of the whole node → restart at 60 %.

    Each step that did not happen is logged as such (the scenario then fails): a storm
    without its disruptions proves nothing.
    """
    started = time.monotonic()

    def step(what: str, action: Callable[[], object]) -> None:
        began = time.monotonic() - started
        try:
            action()
            log.append(f"{what} at {began:.1f}s (took {time.monotonic() - started - began:.1f}s)")
        except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
            log.append(f"FAILED {what}: {type(exc).__name__}: {str(exc)[:120]}")

    storm.wait_for(0.25)
    step("stop_app", node.stop_app)
    time.sleep(5)
    step("start_app", node.start_app)
    storm.wait_for(0.6)
    step("kill -9", node.kill9)
    time.sleep(3)
    step("restart", node.start)


def flush_spool(config: Path) -> int:
    """What the systemd timer does on a host: ``loginwatch-hook flush`` until the spool is empty."""
    for _ in range(20):
        hookrun.wait_for(lambda: not hookrun.spooled(config.parent), timeout=10)
        if not hookrun.spooled(config.parent):
            return 0
        hookrun.run_hook(config, env={}, args=("flush",), timeout=60)
    return len(hookrun.spooled(config.parent))


def broker_restarts(args: argparse.Namespace) -> dict[str, object]:
    """2,000 hook runs from 10 hosts while a private broker node restarts and crashes."""
    runs = 20 if args.quick else 200
    started = time.monotonic()
    with (
        ChaosNode() as node,
        tempfile.TemporaryDirectory(prefix="lw-chaos-b-") as tmp,
        SmtpServer() as smtp,
    ):
        work = Path(tmp)
        config = chaos_config(work / "central.toml", node.url, smtp.port)
        setup(config)
        _declare_tap(node.url)
        hosts = []
        for index in range(10):
            (work / f"h{index}").mkdir()
            hosts.append(
                hookrun.write_config(work / f"h{index}", node.url, host=f"web-{index:02d}")
            )
        storm, events_log = Storm(hosts, runs), list[str]()
        with workers(config, work / "logs", 1):
            threads = [threading.Thread(target=storm.host, args=(i,)) for i in range(len(hosts))]
            chaos = threading.Thread(target=_disrupt, args=(node, storm, events_log))
            for thread in [*threads, chaos]:
                thread.start()
            for thread in [*threads, chaos]:
                thread.join()
            left = sum(flush_spool(host) for host in hosts)
            # Every event that reached the broker has a copy in the tap queue.
            ids = {}
            for taken in take_all(node.url, TAP):
                login = decode(taken.body)
                ids[login.tty] = login.id_hex
            ledger = Ledger("broker", set(ids.values()), logs=[])

            def refresh() -> None:
                ledger.mails = list(smtp.messages)
                ledger.logs = sorted((work / "logs").glob("*.log"))

            wait_settled(ledger, refresh, timeout=180)
        ledger.dead = take_all(node.url, topology.DEAD_QUEUE)
        figures = ledger.figures()
        figures["lost"] = int(figures["lost"]) + storm.total - len(ids)  # type: ignore[call-overload]
        figures.update(
            sent=storm.total,
            seconds=round(time.monotonic() - started, 1),
            reached_broker=len(ids),
            left_in_spools=left,
            hook_exit_codes=dict(storm.exits),
            hook_p50_ms=round(statistics.median(storm.times) * 1000, 1),
            hook_max_ms=round(max(storm.times) * 1000, 1),
            hooks_over_bound=sum(t > FOREGROUND_BOUND_S for t in storm.times),
            hook_bound_s=FOREGROUND_BOUND_S,
            disruptions=events_log,
        )
        if len(events_log) != 4 or any(e.startswith("FAILED") for e in events_log):
            figures["error"] = "the broker was not disrupted as planned: " + "; ".join(events_log)
        return figures


def spool_disk_full(args: argparse.Namespace) -> dict[str, object]:
    """Logins on a host whose spool disk is full, then one after space came back."""
    logins = 5 if args.quick else 20
    with (
        fresh_vhost("loginwatch-chaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-d-") as tmp,
        SmtpServer() as smtp,
    ):
        work = Path(tmp)
        digest = '[digest]\nevery = "5s"\nlease = "2s"\nempty = "skip"\n'
        config = chaos_config(work / "central.toml", vhost.url(), smtp.port, extra=digest)
        setup(config)
        (work / "host").mkdir()
        hook_config = hookrun.write_config(work / "host", vhost.url(), host="web-full")
        scheduler = digest_scheduler(config, work / "digest.log", "")
        try:
            with workers(config, work / "logs", 1):
                out = _full_disk_logins(hook_config, logins)
                # Each full-disk login is mailed (sent from memory) or counted as dropped.
                hookrun.wait_for(
                    lambda: (
                        _digest_drops(smtp) is not None
                        or len(_full_disk_mails(smtp)) + len(_mails_of(smtp, "s-after")) > logins
                    ),
                    timeout=60,
                )
        finally:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(30)
        mails = list(smtp.messages)
    times = [int(line[2:]) / 1e6 for line in out.splitlines() if line.startswith("t=")]
    after = [m for m in mails if "s-after" in _text(m)]
    from_memory = _full_disk_mails(smtp)
    counted = 0
    for mail in after:
        if _NOTE in _text(mail):
            counted = int(_text(mail).split(_NOTE, 1)[1].split()[0])
    in_digest = _digest_drops(smtp)
    return {
        "sent": logins + 1,
        "logins_proceeded": out.count("rc=0"),
        "hook_max_ms": round(max(times), 1) if times else None,
        "mailed": len(after),
        "mailed_from_memory": len(set(from_memory)),
        "dropped_counted_in_next_event": counted,
        "dropped_reported_in_digest": in_digest,
        "lost": logins + 1 - len(after) - len(set(from_memory)) - max(counted, in_digest or 0),
        "duplicate_mails": max(0, len(after) - 1) + len(from_memory) - len(set(from_memory)),
        "flush_exit": out.split("flush=")[-1].split()[0] if "flush=" in out else None,
    }


_NOTE = "The host had to drop "


def _mails_of(smtp: SmtpServer, tty: str) -> list[Received]:
    return [mail for mail in list(smtp.messages) if tty in _text(mail)]


def _full_disk_mails(smtp: SmtpServer) -> list[str]:
    """The tty (``s-full-N``) of every mail about a login made while the disk was full:
    the hook could spool none of them, and handed each to its publisher in memory."""
    found = (re.search(r"s-full-\d+", _text(mail)) for mail in list(smtp.messages))
    return [match.group(0) for match in found if match]


def _text(mail: Received) -> str:
    part = mail.message.get_body(("plain",))
    return str(part.get_content()) if part is not None else ""


def _digest_drops(smtp: SmtpServer) -> int | None:
    """The drop count a received digest reports for host web-full, if one did yet."""
    for mail in list(smtp.messages):
        text = _text(mail)
        if "X-Loginwatch-Digest" in mail.message and "spools had to drop" in text:
            section = text.split("spools had to drop", 1)[1]
            found = re.search(r"^\s+web-full\s+(\d+)\s*$", section, re.M)
            if found:
                return int(found.group(1))
    return None


def _full_disk_logins(hook_config: Path, logins: int) -> str:
    """In a private mount namespace: a 64 KiB tmpfs spool, filled; ``logins`` hook runs;
    space freed; one more login; flush. Returns the script's output.

    Raises:
        RuntimeError: no tmpfs could be mounted (not root, no namespaces).
    """
    spool = hook_config.parent / "spool"
    run_dir = hook_config.parent / "run"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in hookrun.PAM_ENV.items() if k != "PAM_TTY")
    hook = f"env -i {env} LOGINWATCH_RUNTIME_DIR={run_dir} {hookrun.HOOK} --config {hook_config}"
    script = f"""
        mkdir -p {spool} && mount -t tmpfs -o size=64k,mode=0700 tmpfs {spool} || exit 3
        printf '%020d\\n' 0 > {spool}/dropped
        dd if=/dev/zero of={spool}/filler bs=4k count=64 2>/dev/null
        for n in $(seq {logins}); do
            t0=$(date +%s%N); {hook.replace("env -i", "env -i PAM_TTY=s-full-$n")}
            echo "rc=$?"; echo "t=$(( $(date +%s%N) - t0 ))"
        done
        rm -f {spool}/filler
        env -i PAM_TTY=s-after {hook.removeprefix("env -i ")}; echo "rc=$?"
        for try in 1 2 3 4 5 6 7 8 9 10; do
            LOGINWATCH_RUNTIME_DIR={run_dir} {hookrun.HOOK} flush --config {hook_config} && break
            sleep 1
        done
        echo "flush=$?"
    """
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ},
    )  # fmt: skip
    if out.returncode == 3:
        raise RuntimeError(f"cannot mount a tmpfs spool: {out.stderr.strip()[:200]}")
    return out.stdout
