"""Chaos for several central machines: the one running the active digest scheduler dies.

Two central "machines" (network namespaces, tests/support/netns.py), each running a worker
(``loginwatch worker``) and a digest scheduler (``loginwatch digest``), share one private
PostgreSQL store and one private RabbitMQ node, which they reach over their veth links. The
scheduler of machine A takes the lease first; B's stands by. Short digest windows
(``[digest] every`` of a few seconds, a 2 s lease), a stream of events from the root
namespace all along, and in the middle of it every process of machine A gets ``kill -9``
(``ip netns pids``): its worker and its active scheduler at once, as a power loss would.

Goals: every event accounted for (mailed, digest-only, ignored or dead: lost 0), no mail
twice (duplicates 0), B's scheduler sends the windows after the kill, exactly one digest
per window and no window missing from the first to the last. Also reported: the longest
gap in alert mail arrival (the kill's cost) and how long after the kill B's first digest
arrived.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from itertools import pairwise
from typing import cast

from schemas import topology
from schemas.event import LoginEvent
from tests.chaos.chaos_digest import _key_times, _windows
from tests.support.chaos_support import Ledger, mixed_event, publish_events, wait_settled
from tests.support.machines import Rig
from tests.support.worker_helpers import take_all

_SENT = re.compile(r"digest (\S+) for \S+: sent")
_EVENT_HEADER = re.compile(rb"^X-Loginwatch-Event: ", re.M | re.I)


def _stream(url: str, events: list[LoginEvent], seconds: float, done: threading.Event) -> None:
    """``events`` spread evenly over ``seconds``, in batches of ten."""
    try:
        pause = seconds / max(1, len(events) // 10)
        for first in range(0, len(events), 10):
            publish_events(url, events[first : first + 10])
            time.sleep(pause)
    finally:
        done.set()


def machine_kill(args: argparse.Namespace) -> dict[str, object]:
    every = 3 if args.quick else 5
    before, after = (4, 6) if args.quick else (6, 10)  # windows before and after the kill
    count = 400 if args.quick else 2000
    started = time.monotonic()
    digest = f'[digest]\nevery = "{every}s"\nlease = "2s"\nempty = "quiet"\n'
    with Rig(2, extra=digest) as rig:
        a, b = rig.machines
        for machine, name in ((a, "worker-a"), (b, "worker-b")):
            rig.start(machine, "worker", name)
            rig.wait_log(name, r"consuming loginwatch\.alerts")
        rig.start(a, "digest", "digest-a")
        rig.wait_log("digest-a", r"holding the lease")
        rig.start(b, "digest", "digest-b")  # the lease is A's: B stands by
        events = [mixed_event(n) for n in range(count)]
        ledger = Ledger("machine", {e.id_hex for e in events})
        streamed = threading.Event()
        stream_s = (before + after) * every
        publisher = threading.Thread(
            target=_stream, args=(rig.amqp_url, events, stream_s, streamed), daemon=True
        )
        publisher.start()
        time.sleep(before * every)
        killed_at = time.monotonic()
        killed = a.kill_all()
        ledger.notes["killed_pids_of_a"] = len(killed)
        streamed.wait(stream_s + 120)

        def refresh() -> None:
            ledger.mails = list(rig.smtp.messages)
            ledger.logs = [rig.log("worker-a"), rig.log("worker-b")]

        wait_settled(ledger, refresh, timeout=120)
        time.sleep(2 * every + 3)  # the last window closes and B sends it
        rig.stop_all()
        refresh()
        ledger.dead = take_all(rig.amqp_url, topology.DEAD_QUEUE)
        figures = ledger.figures()
        stamped = list(zip(rig.smtp.arrivals, rig.smtp.messages, strict=False))
        b_log = rig.log("digest-b").read_text(errors="replace")
        a_log = rig.log("digest-a").read_text(errors="replace")
    alerts = [at for at, mail in stamped if _EVENT_HEADER.search(mail.data)]
    digests = [at for at, mail in stamped if b"X-Loginwatch-Digest:" in mail.data]
    copies, per_window = _windows([mail.data for _, mail in stamped])
    ordered = sorted(per_window, key=_key_times)
    gaps = [f"{x} → {y}" for x, y in pairwise(ordered) if _key_times(x)[1] != _key_times(y)[0]]
    by_b, by_a = set(_SENT.findall(b_log)), set(_SENT.findall(a_log))
    after_kill = [at - killed_at for at in digests if at > killed_at]
    return {
        **figures,
        "longest_alert_gap_s": round(max((y - x for x, y in pairwise(alerts)), default=0.0), 2),
        "digest_windows": len(per_window),
        "digest_windows_sent_by_a": len(by_a),
        "digest_windows_sent_by_standby_b": len(by_b),
        "first_standby_digest_after_kill_s": round(min(after_kill), 1) if after_kill else None,
        "windows_with_one_digest": sum(n == 1 for n in per_window.values()),
        "windows_with_two_or_more": sum(n > 1 for n in per_window.values()),
        "resent_same_message_id": sum(copies.values()) - sum(per_window.values()),
        "missing_windows": gaps,
        # A standby that sent no window lost every window after the kill.
        "lost": cast(int, figures["lost"]) + len(gaps) + (0 if by_b else 1),
        "duplicate_mails": cast(int, figures["duplicate_mails"])
        + sum(n - 1 for n in per_window.values()),
        "seconds": round(time.monotonic() - started, 1),
    }
