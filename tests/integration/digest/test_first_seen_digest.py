"""The digest's first-seen list cannot be emptied by one host either (SQLite, PostgreSQL):
a compromised web-1 reports root's login from an attacker's address; the attacker's real
login on db-1 is still listed as first-seen."""

from __future__ import annotations

from consumer.digest.windows import window_at
from consumer.stages.enrich import Enricher
from tests.support.digest_support import (
    OPS,
    day,
    digests_for,
    login,
    make_config,
    store_events,
)

ATTACKER = "203.0.113.66"


def test_one_host_cannot_hide_a_first_seen_login_from_the_digest(store_url: str) -> None:
    config = make_config(store_url)
    digests = digests_for(config)
    forged = login(day(0, 1), "web-1", "root", ATTACKER)
    real = login(day(0, 2), "db-1", "root", ATTACKER)
    later = login(day(0, 3), "db-1", "root", ATTACKER)
    store_events(digests, [forged, real, later], day(0, 4))
    enricher = Enricher(config.enrich, digests.store.store)  # as the worker records them
    for event in (forged, real, later):
        enricher.facts(event, day(0, 4))
    summary = digests.summaries(window_at(digests.schedule, day(0, 1)), dead=0)[OPS]
    assert [(r.host, r.user) for r in summary.first_seen.rows] == [
        ("web-1", "root"),
        ("db-1", "root"),
    ]
    digests.store.store.close()
