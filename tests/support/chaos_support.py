"""The chaos suite's bookkeeping: a pipeline rig and the per-scenario ledger.

Every event a scenario sends must end in exactly one of: mailed (the SMTP server holds a
mail whose ``X-Loginwatch-Event`` is its id), digest-only (the worker logged a ``digest``,
``silenced`` or ``folded`` decision for it), ignored (an ``ignore`` decision), or dead (in
the dead queue, with its reason). Anything else is *lost*; a second mail with the same
``Message-ID`` is a *duplicate*. Nothing here trusts the code under test's own counters.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika

from schemas import topology
from schemas.errors import DecodeError
from schemas.event import LoginEvent, Outcome, PamType, encode
from schemas.wire import decode_event as decode
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.smtp_server import Received
from tests.support.worker_helpers import Taken, WorkerProcess, central_sections, loginwatch

RECIPIENT = "ops@test.example"
_DECISION = re.compile(r"\b([0-9a-f]{32}) (digest|silenced|folded|ignore) ", re.M)
_EVENT_HEADER = re.compile(rb"^X-Loginwatch-Event: ([0-9a-f]{32})\r?$", re.M | re.I)
_MESSAGE_ID = re.compile(rb"^Message-ID: (\S+)\r?$", re.M | re.I)


class NodeVhost(Vhost):
    """A vhost on a broker at another port (the chaos suite's private node)."""

    def __init__(self, name: str, port: int) -> None:
        super().__init__(name)
        self.port = port

    def url(self, user: str = "guest", password: str = "guest", port: int = 0) -> str:
        return super().url(user, password, port or self.port)


def chaos_config(
    path: Path,
    amqp_url: str,
    smtp_port: int,
    *,
    retry_delays: Iterable[int] = (1, 2, 4),
    extra: str = "",
    flood_max: int = 1_000_000,
) -> Path:
    """Routes that exercise every way out: ``quiet-*`` hosts ignored, failures to the
    digest only, everything else mailed at once; flood control out of the way."""
    delays = ", ".join(str(d) for d in retry_delays)
    path.write_text(
        central_sections(amqp_url, smtp_port, path.parent, delays)
        + f"""
[policy]
flood_max = {flood_max}
{extra}

[[route]]
to = ["{RECIPIENT}"]
hosts = ["quiet-*"]
mode = "ignore"

[[route]]
to = ["{RECIPIENT}"]
kinds = ["failure"]
mode = "digest"

[[route]]
to = ["{RECIPIENT}"]
mode = "immediate"
""",
        encoding="utf-8",
    )
    return path


def setup(config: Path) -> None:
    """``loginwatch setup`` or an error naming why."""
    done = loginwatch("setup", "--config", str(config), timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"loginwatch setup failed: {done.stderr.strip()}")


def mixed_event(n: int, host: str | None = None) -> LoginEvent:
    """Event ``n`` of a stream: every 10th a failed password, every 25th from a quiet host."""
    failed = n % 10 == 3
    return event(
        id=os.urandom(16),
        host=host or (f"quiet-{n % 7}" if n % 25 == 7 else f"web-{n % 10:02d}"),
        tty=f"c{n}",
        client_port=1024 + n % 60000,
        pam_type=PamType.AUTH if failed else PamType.OPEN_SESSION,
        outcome=Outcome.FAILURE if failed else Outcome.SUCCESS,
    )


def publish_events(url: str, events: Iterable[LoginEvent], batch: int = 200) -> int:
    """Publish as hosts do (persistent, mandatory, confirmed); returns how many."""
    count = 0
    props = pika.BasicProperties(delivery_mode=2, content_type=topology.CONTENT_TYPE)
    params = pika.URLParameters(url)
    # As the central user, which may speak for any host (a message without one is dead).
    user = str(params.credentials.username)
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for login in events:
            body = encode(login)
            message = pika.BasicProperties(
                delivery_mode=2,
                content_type=props.content_type,
                message_id=login.id_hex,
                user_id=user,
            )
            channel.basic_publish(topology.EXCHANGE, login.kind, body, message, mandatory=True)
            count += 1
    return count


def queue_depths(url: str, names: Iterable[str]) -> dict[str, int]:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        return {
            name: int(channel.queue_declare(name, passive=True).method.message_count)
            for name in names
        }


def event_id(body: bytes) -> str | None:
    with contextlib.suppress(DecodeError):
        return decode(body).id_hex
    return None


@dataclass
class Ledger:
    """Where each sent event ended up, from the SMTP server, the logs and the dead queue."""

    scenario: str
    sent: set[str]
    mails: list[Received] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    dead: list[Taken] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def decisions(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {"digest": set(), "ignore": set()}
        for log in self.logs:
            if log.exists():
                for ident, action in _DECISION.findall(log.read_text(errors="replace")):
                    found["ignore" if action == "ignore" else "digest"].add(ident)
        return found

    def figures(self) -> dict[str, object]:
        # Header regexes, not email parsing: this runs every second over 10,000 mails.
        mailed = {m.group(1).decode() for r in self.mails if (m := _EVENT_HEADER.search(r.data))}
        per_id = Counter(m.group(1) for r in self.mails if (m := _MESSAGE_ID.search(r.data)))
        decided = self.decisions()
        dead_ids = {i for t in self.dead if (i := event_id(t.body))}
        reasons = Counter(
            str(t.headers.get(topology.HEADER_REASON, "?"))[:60] for t in self.dead
        ).most_common(3)
        accounted = mailed | decided["digest"] | decided["ignore"] | dead_ids
        return {
            "sent": len(self.sent),
            "mailed": len(mailed & self.sent),
            "digest_only": len(decided["digest"] & self.sent),
            "ignored": len(decided["ignore"] & self.sent),
            "dead": len(dead_ids & self.sent),
            "dead_reasons": dict(reasons),
            "lost": len(self.sent - accounted),
            "duplicate_mails": sum(n - 1 for n in per_id.values()),
            "seconds": round(time.monotonic() - self.started, 1),
            **self.notes,
        }

    def settled(self) -> bool:
        return self.figures()["lost"] == 0


def wait_settled(
    ledger: Ledger, refresh: Callable[[], None], timeout: float, step: float = 1.0
) -> bool:
    """Poll until every sent event is accounted for (or ``timeout``); ``refresh`` re-reads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh()
        if ledger.settled():
            return True
        time.sleep(step)
    refresh()
    return ledger.settled()


@contextlib.contextmanager
def workers(config: Path, logs: Path, count: int) -> Iterator[list[WorkerProcess]]:
    """``count`` worker subprocesses (their logs under ``logs``), all stopped at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    running: list[WorkerProcess] = []
    try:
        for n in range(count):
            # One after another: two workers opening a fresh SQLite store at the same moment
            # race on `PRAGMA journal_mode=WAL`, and one exits with "database is locked".
            running.append(WorkerProcess(config, logs / f"worker-{n}.log"))
            running[-1].wait_for(r"consuming loginwatch\.alerts", timeout=60)
        yield running
    finally:
        for worker in running:
            if worker.proc.poll() is None:
                try:
                    worker.stop()
                except Exception:
                    worker.kill()


def print_report(name: str, figures: dict[str, object]) -> None:
    clean = (
        figures.get("lost") == 0
        and figures.get("duplicate_mails", 0) == 0
        and figures.get("duplicates_outside_window", 0) == 0
    )
    verdict = (
        "SKIPPED" if "skipped" in figures else "OK" if clean and "error" not in figures else "FAIL"
    )
    print(f"\n== {name}: {verdict}", flush=True)
    for key, value in figures.items():
        print(f"   {key:28} {value}", flush=True)
