"""The digest's events and the first-seen tables store text by one rule, so they join.

A user name with a NUL and a backslash (the hook passes on what PAM gave it) goes through
the digest's intake and through ``Store.observe``; the first-seen JOIN finds the row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumer.digest import intake
from consumer.digest.windows import Window
from consumer.store import Store
from consumer.store.text import sql_text
from schemas.config import Route
from tests.support.factories import event

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ROUTES = (Route(to=("ops@example.com",), mode="digest"),)
COLUMNS = (
    "event_id, at, host, username, kind, client_ip, rhost, auth_method, dropped, audience,"
    " arrived_at, host_at, fingerprint, service, session_seconds"
)
JOINED = """
SELECT e.username, e.host FROM digest_event e JOIN first_seen_host f
  ON f.username = e.username AND f.scope = 'address' AND f.value = e.client_ip
 AND f.event_id = e.event_id
"""


@pytest.mark.parametrize(
    ("value", "stored"),
    [("root", "root"), ("a\\b", "a\\\\b"), ("r\x00ot", "r\\x00ot"), ("\\x00\x00", "\\\\x00\\x00")],
)
def test_nul_and_backslash_are_escaped_and_nothing_else(value: str, stored: str) -> None:
    assert sql_text(value) == stored


def test_a_nul_and_backslash_user_stored_by_both_paths_joins(store: Store) -> None:
    login = event(user="ro\x00o\\t", host="web\\1\x00", client_ip="192.0.2.7", time=T0)
    collecting = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    row = intake.event_row(login, ROUTES, collecting, T0)
    store.db.execute(f"INSERT INTO digest_event ({COLUMNS}) VALUES ({', '.join('?' * 15)})", row)
    seen = store.observe(login.user, address="192.0.2.7", network=None, country=None,
                         event_id=login.id_hex, now=T0, host=login.host)  # fmt: skip
    assert seen.address
    assert store.db.execute(JOINED) == [(sql_text(login.user), sql_text(login.host))]
