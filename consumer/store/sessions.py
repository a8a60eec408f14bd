"""Logins by their session's links (``login_link``): what a su, a sudo or a logout of the
same session finds its login by (``consumer/detect/escalation.py``), and what a hop
through a jump host finds the first login by (``consumer/detect/hops.py``).

One row per host and link (``audit:N``, ``pid:N:START``); a later login of the same link
replaces the earlier (a pid, even with its start time, may come back after a reboot). The
worker writes a login's rows with the batch's next round trip while the host is within its
first-seen quota (each login also makes first-seen rows: ``consumer/store/quota.py``), and
rows go after ``[store] keep`` (``retention``), so the table holds at most a host's
quota of logins per day for ``keep``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.detections import Origin
from consumer.store.backends import Row, Statement
from consumer.store.text import sql_text

_COLUMNS: Final = "link, event_id, username, service, source, fingerprint, at, host"

# The logins of a user within a window, on every host (a hop's first leg).
_BY_USER: Final = (
    f"SELECT {_COLUMNS} FROM login_link WHERE username = ? AND at >= ? AND at <= ?"  # noqa: S608
    " ORDER BY at DESC LIMIT 16"
)
_WRITE_HEAD: Final = """
INSERT INTO login_link
    (host, link, event_id, username, service, source, fingerprint, at, seen_at)
VALUES"""
_WRITE_TAIL: Final = """ON CONFLICT (host, link) DO UPDATE SET
    event_id = excluded.event_id, username = excluded.username, service = excluded.service,
    source = excluded.source, fingerprint = excluded.fingerprint, at = excluded.at,
    seen_at = excluded.seen_at
WHERE excluded.at >= login_link.at
"""


def read_statement(pairs: Sequence[tuple[str, str]]) -> Statement:
    """The logins of these (host, link) pairs (one statement for a batch)."""
    where = " OR ".join(["(host = ? AND link = ?)"] * len(pairs))
    return (f"SELECT {_COLUMNS} FROM login_link WHERE {where}",  # noqa: S608
            [p for host, link in pairs for p in (sql_text(host), link)])  # fmt: skip


def by_user_statement(user: str, since: datetime, until: datetime) -> Statement:
    return _BY_USER, (sql_text(user), utc(since).timestamp(), utc(until).timestamp())


def write_statement(logins: Sequence[tuple[str, Origin]], now: datetime) -> Statement:
    """One upsert of the logins by their links, (link, login) each, the latest per host and
    link (a row may be named once per statement on PostgreSQL)."""
    latest: dict[tuple[str, str], Origin] = {}
    for link, login in logins:
        key = (sql_text(login.host), link)
        if key not in latest or login.at >= latest[key].at:
            latest[key] = login
    params: list[object] = []
    for (host, link), login in latest.items():
        params += [host, link, login.event_id, sql_text(login.user), sql_text(login.service),
                   sql_text(login.source), login.fingerprint, utc(login.at).timestamp(),
                   utc(now).timestamp()]  # fmt: skip
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(latest))
    return f"{_WRITE_HEAD} {rows}\n{_WRITE_TAIL}", params


def origins_of(rows: list[Row], words: dict[str, str] | None = None) -> list[Origin]:
    """The logins ``read_statement`` or ``by_user_statement`` read; ``linked_by`` says
    the link in words (``words``: link → words; else the link itself)."""
    return [
        Origin(
            event_id=str(event_id),
            user=str(user),
            host=str(host),
            service=str(service),
            source=str(source),
            fingerprint=str(fingerprint),
            at=datetime.fromtimestamp(float(str(at)), UTC),
            linked_by=(words or {}).get(str(link), str(link)),
        )
        for link, event_id, user, service, source, fingerprint, at, host in rows
    ]
