"""What the detections add to the digest: hosts that stopped reporting (in every digest
until they report again), failure sources counted as new, sessions that ended with their
lengths, the service of each event."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from consumer.digest.intake import event_row
from consumer.digest.windows import current, window_at
from consumer.store import Beat
from schemas.event import Outcome, PamType
from tests.support.digest_support import (
    OPS,
    day,
    digests_for,
    failure,
    login,
    make_config,
    store_events,
    totals,
)
from tests.support.smtp_server import text_part


def test_quiet_hosts_new_failure_sources_and_sessions(tmp_path: Path) -> None:
    store = tmp_path / "lw.db"
    digests = digests_for(make_config(str(store)))
    events = [login(day(0, 1), "web-1", "bob", "192.0.2.10")]
    events += [failure(day(0, 2) + timedelta(seconds=i), "web-1", "root", f"203.0.113.{i % 3}")
               for i in range(6)]  # fmt: skip
    events += [failure(day(0, 2), "web-1", "bob", "192.0.2.10")]  # a familiar source
    events += [login(day(0, 3), "web-1", "root", "", service="sudo", ruser="bob", tty="pts/0")]
    store_events(digests, events, day(0, 16))
    digests.store.store.observe(
        "bob", address="192.0.2.10", network=None, country=None, event_id="e1", now=day(0, 1)
    )  # its login: first-seen
    # A logout of bob's session: the digest reads its length (from wtmp: 1 h 05 min).
    end = login(day(0, 2), "web-1", "bob", "192.0.2.10", pam_type=PamType.CLOSE_SESSION,
                outcome=Outcome.SUCCESS, client_port=9)  # fmt: skip
    collecting = current(digests.schedule, day(0, 16), [])
    digests.store.add_events([event_row(end, digests.config.route, collecting, day(0, 16),
                                        3900.0)])  # fmt: skip
    # web-9 heartbeat long before the window's end, then nothing: quiet; web-8 said goodbye.
    digests.store.store.note_beats([
        Beat(name="web-9", at=day(-1), version="1", spool_depth=0, dropped=0, addresses=(),
             goodbye=False),
        Beat(name="web-8", at=day(0, 1), version="1", spool_depth=0, dropped=0, addresses=(),
             goodbye=True, why="stop"),
    ])  # fmt: skip
    window = window_at(digests.schedule, day(0, 1))
    summary = digests.summaries(window, dead=0)[OPS]
    text = text_part(digests.renderer.render(digests.view(summary), day(1)))
    assert "Hosts that stopped reporting (no event, no heartbeat)" in text
    assert "  web-9" in text and "gone since" in text
    assert "  web-8" in text and "stopped since" in text
    assert "Failed logins: 7 (3 new sources: no login ever came from them)" in text
    assert "Sessions that ended, the longest first" in text
    assert "bob on web-1: 1 h 05 min" in text
    assert totals(text)["sudo and su sessions"] == "1"
    with sqlite3.connect(store) as db:
        services = dict(db.execute("SELECT kind, service FROM digest_event"
                                   " WHERE kind IN ('sudo', 'login')").fetchall())  # fmt: skip
    assert services == {"sudo": "sudo", "login": "sshd"}
