"""The hosts table: every host that reported, the last time one of its events arrived, and the
host-side version (the event's ``hook_version``) of that event; since the detection issue,
each host's heartbeats too (``beat_statements``: spool depth, dropped count, its own
addresses in ``host_address``, a goodbye), what ``consumer/detect/quiet.py`` decides quiet
hosts from (``quiet_read``, ``host_states``), and ``loginwatch host retire``
(``retire_statement``).

The worker upserts one row per host of each batch, in the batch's first round trip
(``StoreBatch``); ``loginwatch status`` reads which versions reported in the last day, so an
operator upgrading a fleet over weeks sees the stragglers. The detection issue's heartbeats
write the same rows. Names and versions are the hosts' own text: stored as ``sql_text``
stores every text, shown through ``consumer.core.display`` by whoever prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.detections import HostState
from consumer.store.backends import Database, Row, Statement
from consumer.store.text import sql_text

_UPSERT_HEAD = "INSERT INTO hosts (name, last_event, hook_version) VALUES"
# A late arrival (an older batch committing after a newer one) never moves a host back. A
# report ends a quiet host's silence (its alert was for that one), its goodbye and its
# retirement (it came back: watched again).
_UPSERT_TAIL = """ON CONFLICT (name) DO UPDATE SET
    hook_version = CASE WHEN excluded.last_event >= hosts.last_event
                        THEN excluded.hook_version ELSE hosts.hook_version END,
    last_event = CASE WHEN excluded.last_event > hosts.last_event
                      THEN excluded.last_event ELSE hosts.last_event END,
    quiet_alerted_at = NULL, goodbye_at = NULL, retired_at = NULL"""


@dataclass(frozen=True)
class HostReport:
    """One event's word on its host: its name, when the event arrived, its hook's version."""

    name: str
    at: datetime
    version: str


@dataclass(frozen=True)
class HostRow:
    name: str
    last_event: datetime
    version: str


def report_statements(reports: Sequence[HostReport]) -> list[Statement]:
    """One upsert for all of ``reports``, the last report of each host winning (one row may
    be named once per statement on PostgreSQL); none for no reports."""
    last: dict[str, HostReport] = {}
    for report in reports:
        last[report.name] = report
    if not last:
        return []
    values = ", ".join(["(?, ?, ?)"] * len(last))
    params: list[object] = []
    for report in last.values():
        params += [sql_text(report.name), utc(report.at).timestamp(), sql_text(report.version)]
    return [(f"{_UPSERT_HEAD} {values}\n{_UPSERT_TAIL}", params)]


def reported_since(db: Database, since: datetime) -> list[HostRow]:
    """The hosts whose last event arrived at ``since`` or later, by name."""
    rows = db.execute(
        "SELECT name, last_event, hook_version FROM hosts WHERE last_event >= ? ORDER BY name",
        (utc(since).timestamp(),),
    )
    return [
        HostRow(str(name), datetime.fromtimestamp(float(at), UTC), str(version))
        for name, at, version in rows
    ]


# -- heartbeats, quiet hosts, retired hosts (the detection issue) ---------------------------

_BEAT: Final = """
INSERT INTO hosts (name, last_event, hook_version, heartbeat_at, spool_depth, dropped,
                   goodbye_at, goodbye_why)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    hook_version = excluded.hook_version, heartbeat_at = excluded.heartbeat_at,
    spool_depth = excluded.spool_depth, dropped = excluded.dropped,
    goodbye_at = excluded.goodbye_at, goodbye_why = excluded.goodbye_why,
    quiet_alerted_at = NULL,
    retired_at = CASE WHEN excluded.goodbye_at IS NULL THEN NULL ELSE hosts.retired_at END
"""
_QUIET: Final = """
SELECT name, last_event, heartbeat_at, goodbye_at, goodbye_why, quiet_alerted_at
FROM hosts
WHERE retired_at IS NULL AND last_event < ? AND heartbeat_at < ?
ORDER BY name LIMIT ?
"""
# The most quiet hosts one check reads (and the digest lists): a fleet that lost this many
# at once has a bigger problem than its list, and the rest come with the next checks.
QUIET_MOST: Final = 1000


@dataclass(frozen=True)
class Beat:
    """One heartbeat as the hosts table keeps it; ``at``: when it arrived."""

    name: str
    at: datetime
    version: str
    spool_depth: int
    dropped: int
    addresses: tuple[str, ...]
    goodbye: bool
    why: str = ""


def beat_statements(beats: Sequence[Beat]) -> list[Statement]:
    """The hosts' rows and addresses of ``beats``, the last of each host winning."""
    last: dict[str, Beat] = {}
    for beat in beats:
        last[sql_text(beat.name)] = beat
    statements: list[Statement] = []
    for name, beat in last.items():
        stamp = utc(beat.at).timestamp()
        statements.append((_BEAT, (name, stamp, sql_text(beat.version), stamp, beat.spool_depth,
                                   beat.dropped, stamp if beat.goodbye else None,
                                   sql_text(beat.why))))  # fmt: skip
        statements.append(("DELETE FROM host_address WHERE host = ?", (name,)))
        statements += [("INSERT INTO host_address (address, host, seen_at) VALUES (?, ?, ?)"
                        " ON CONFLICT (address, host) DO NOTHING", (sql_text(a), name, stamp))
                       for a in dict.fromkeys(beat.addresses)]  # fmt: skip
    return statements


def quiet_read(since: datetime) -> Statement:
    """The hosts (not retired) whose last event and heartbeat came before ``since``. Only
    hosts that sent a heartbeat are watched: a hook older than heartbeats reports only
    when someone logs in, and a night without logins is no silence."""
    stamp = utc(since).timestamp()
    return _QUIET, (stamp, stamp, QUIET_MOST)


def host_states(rows: Sequence[Row]) -> list[HostState]:
    """What ``quiet_read`` read, as the quiet decision takes it."""
    states = []
    for name, last_event, heartbeat_at, goodbye_at, why, alerted in rows:
        last = max(float(str(last_event)), float(str(heartbeat_at or 0)))
        states.append(HostState(
            name=str(name), last_report=datetime.fromtimestamp(last, UTC),
            goodbye_at=None if goodbye_at is None
            else datetime.fromtimestamp(float(str(goodbye_at)), UTC),
            goodbye_why=str(why), alerted=alerted is not None))  # fmt: skip
    return states


def alerted_statement(name: str, now: datetime) -> Statement:
    """Note that the quiet alert of ``name``'s silence went out (a report clears it)."""
    return "UPDATE hosts SET quiet_alerted_at = ? WHERE name = ?", (utc(now).timestamp(), name)


def retire_statement(name: str, now: datetime) -> Statement:
    """End the watch on ``name`` (a report from it starts it again); returns its row."""
    return ("UPDATE hosts SET retired_at = ? WHERE name = ? RETURNING name",
            (utc(now).timestamp(), sql_text(name)))  # fmt: skip


def hosts_at_statement(addresses: Sequence[str]) -> Statement:
    """The hosts whose last heartbeat listed one of ``addresses``: (address, host) rows."""
    marks = ", ".join(["?"] * len(addresses))
    return (f"SELECT address, host FROM host_address WHERE address IN ({marks})"  # noqa: S608
            " ORDER BY address, host LIMIT 64", [sql_text(a) for a in addresses])  # fmt: skip


def addresses_statement(most: int) -> Statement:
    """Every address the hosts' last heartbeats listed (at most ``most``)."""
    return "SELECT DISTINCT address FROM host_address LIMIT ?", (most,)
