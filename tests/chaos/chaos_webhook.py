"""The ``webhook`` chaos scenario: the receiver down for minutes, then back but flaky.

Two workers send every immediate alert to a Standard Webhooks receiver (a real HTTP server of
ours on loopback, tests/support/receiver_server.py, checking each signature and body). It is
stopped for ``--webhook-down`` seconds while events keep coming, then started again on the
same port, answering now and then 429 (``Retry-After: 1``), 500, a cut connection, or a cut
connection *after* storing the post: the unknowable window of docs/channels.md.

Every event must end posted (the server holds a post whose ``data.event.id`` is its id),
digest-only or ignored (the workers' decision log lines), or dead (with its reason): anything
else is lost. A second post with the same ``webhook-id`` is a duplicate; one is *inside the
window* when that id had a post stored and never answered (a receiver folds it by
``webhook-id``), else it is outside, and the scenario fails.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from schemas import topology
from tests.support.chaos_support import (
    RECIPIENT,
    Ledger,
    chaos_config,
    event_id,
    mixed_event,
    publish_events,
    setup,
    wait_settled,
    workers,
)
from tests.support.receiver_server import DROP, DROP_AFTER_ACCEPT, ReceiverServer
from tests.support.services import fresh_vhost
from tests.support.smtp_server import free_port
from tests.support.worker_helpers import take_all


class WebhookLedger(Ledger):
    """The ledger, with the receiver's posts in place of mails."""

    posts: list[dict[str, object]]
    window_ids: set[str]

    def figures(self) -> dict[str, object]:
        figures = super().figures()  # no mails here: its "lost" counts every post as lost
        posted = {str(p["event"]) for p in self.posts}
        per_id = Counter(str(p["id"]) for p in self.posts)
        duplicates = {i: n - 1 for i, n in per_id.items() if n > 1}
        inside = sum(n for i, n in duplicates.items() if i in self.window_ids)
        decided = self.decisions()
        dead = {i for t in self.dead if (i := event_id(t.body))}
        accounted = posted | decided["digest"] | decided["ignore"] | dead
        return {
            "sent": figures["sent"],
            "posted": len(posted & self.sent),
            **{k: figures[k] for k in ("digest_only", "ignored", "dead", "dead_reasons")},
            "lost": len(self.sent - accounted),
            "duplicate_posts": sum(duplicates.values()),
            "duplicates_inside_window": inside,
            "duplicates_outside_window": sum(duplicates.values()) - inside,
            "seconds": figures["seconds"],
            **self.notes,
        }


def _flake(server: ReceiverServer, faults: int, calm: threading.Event, log: Counter[str]) -> None:
    rng = random.Random(5)
    choices = [(429, "429"), (500, "500"), (DROP, "drop"), (DROP_AFTER_ACCEPT, "drop_after_accept")]
    while faults > 0 and not calm.wait(0.2):
        with server.lock:
            if server.faults or rng.random() >= 0.5:
                continue
        status, name = rng.choice(choices)
        server.answer(status, retry_after=1 if status == 429 else None)
        log[name] += 1
        faults -= 1


def _retry_delays(outage: float) -> list[int]:
    delays = [2]
    while sum(delays) < 2 * outage + 10:
        delays.append(delays[-1] * 2)
    return delays


def webhook_outage(args: argparse.Namespace) -> dict[str, object]:
    """The webhook receiver down for ``--webhook-down`` seconds, then back but flaky."""
    count = 60 if args.quick else 200
    down = args.webhook_down if args.webhook_down is not None else (20 if args.quick else 120)
    port = free_port()
    servers = [ReceiverServer("webhook", port=port).start()]
    with (
        fresh_vhost("loginwatch-chaos") as vhost,
        tempfile.TemporaryDirectory(prefix="lw-chaos-h-") as tmp,
    ):
        delays = _retry_delays(down)
        config = chaos_config(Path(tmp) / "loginwatch.toml", vhost.url(), free_port(),
                              retry_delays=delays, extra="")  # fmt: skip
        text = config.read_text().replace(f'to = ["{RECIPIENT}"]', 'to = ["receiver:hook"]')
        config.write_text(servers[0].section("hook") + text)
        setup(config)
        events = [mixed_event(n) for n in range(count)]
        ledger = WebhookLedger("webhook", {e.id_hex for e in events})
        ledger.posts, ledger.window_ids = [], set()
        logs = Path(tmp) / "logs"

        def refresh() -> None:
            every = [p for s in servers for p in s.posts]
            ledger.posts = [{"id": p.headers["webhook-id"], "event": p.json["data"]["event"]["id"]}
                            for p in every]  # fmt: skip
            ledger.window_ids = {p.headers["webhook-id"] for s in servers
                                 for p in s.cut_after_accept}  # fmt: skip
            ledger.logs = sorted(logs.glob("*.log"))

        with workers(config, logs, 2):
            publish_events(vhost.url(), events[: count // 4])  # some go out before the outage
            time.sleep(2)
            servers[0].stop()
            outage_start = time.monotonic()
            publish_events(vhost.url(), events[count // 4 : count // 2])
            time.sleep(down / 2)
            publish_events(vhost.url(), events[count // 2 :])
            time.sleep(max(0.0, down - (time.monotonic() - outage_start)))
            flaky = ReceiverServer("webhook", port=port)
            calm, injected = threading.Event(), Counter[str]()
            flaking = threading.Thread(target=_flake, args=(flaky, count // 3, calm, injected),
                                       daemon=True)  # fmt: skip
            servers.append(flaky.start())
            flaking.start()
            ledger.notes["webhook_down_s"] = round(time.monotonic() - outage_start, 1)
            ledger.notes["retry_delays_s"] = delays
            wait_settled(ledger, refresh, timeout=sum(delays) + 120)
            calm.set()
        refresh()
        ledger.dead = take_all(vhost, topology.DEAD_QUEUE)
        ledger.notes["posts_attempted"] = sum(s.attempts for s in servers)
        ledger.notes["faults_injected"] = dict(injected)
        ledger.notes["signature_or_schema_problems"] = sum(len(s.problems) for s in servers)
        for server in servers:
            server.stop()
        return ledger.figures()
