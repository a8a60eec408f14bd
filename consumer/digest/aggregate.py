"""Aggregate one window for one recipient, in SQL: Python only ever sees grouped rows.

A window of a million events is a handful of scans of ``digest_event`` by its ``at``
index; what comes back is at most hosts × heat-map columns × kinds rows, and ``top`` rows
of every list (``COUNT(*) OVER ()`` says how many there were in all). The same SQL runs on
SQLite and PostgreSQL (integer division of BIGINTs floors non-negative numbers on both).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeVar

from consumer.core import clock
from consumer.detect.quiet import quiet
from consumer.digest.aggregate_sql import (
    BURSTS,
    CLOCKS,
    FIRST_SEEN,
    GROWTH,
    HEAT,
    KEPT,
    KEPT_COUNTS,
    LOGINS,
    NEW_FAILURE_SOURCES,
    OVER_CAP,
    SESSIONS,
    SOURCES,
    USERS,
)
from consumer.digest.summary import (
    BurstRow,
    ClockRow,
    Growth,
    HostRow,
    KeptRow,
    Listing,
    LoginRow,
    QuietRow,
    QuotaRow,
    SessionRow,
    SourceRow,
    Summary,
    UserRow,
)
from consumer.digest.tables import epoch, moment
from consumer.digest.windows import Window
from consumer.questions.table import Question, QuestionTable
from consumer.silences.rules import Rule
from consumer.silences.table import SilenceTable
from consumer.store.backends import Database, Row
from consumer.store.hosts import host_states, quiet_read

# A host is named as the store's main grower past half of this many rows and half the rows.
DOMINANT_MIN: Final = 10_000
# Heat-map column widths to choose from: the smallest giving at most 24 columns.
_BUCKETS: Final = (300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
T = TypeVar("T")


@dataclass(frozen=True)
class Rules:
    """What the aggregation needs from ``[digest]``."""

    top: int = 20
    burst_failures: int = 10
    burst_seconds: int = 300
    outside: tuple[tuple[datetime, datetime], ...] = ()  # outside working hours, this window
    configured: tuple[Rule, ...] = ()  # the config's [[silence]] rules
    quiet_after: float = 7200.0  # [hosts] quiet_after


def bucket_seconds(window: Window) -> int:
    length = epoch(window.end) - epoch(window.start)
    return next((b for b in _BUCKETS if length <= 24 * b), _BUCKETS[-1])


def audiences(db: Database, window: Window) -> list[str]:
    """The distinct audiences of the window's events (one scan, shared by all recipients)."""
    rows = db.execute(
        "SELECT DISTINCT audience FROM digest_event WHERE at >= ? AND at < ?",
        (epoch(window.start), epoch(window.end)),
    )
    return [str(row[0]) for row in rows]


def reading(recipient: str, all_audiences: Sequence[str]) -> list[str]:
    """The audiences that include ``recipient``."""
    return [a for a in all_audiences if recipient.lower() in a.split(" ")]


class Aggregator:
    """``Aggregator(db, rules).summary(window, recipient, audiences)`` → ``Summary``.

    Raises ``StoreError`` when the database fails.
    """

    def __init__(self, db: Database, rules: Rules) -> None:
        self.db = db
        self.rules = rules

    def _run(self, sql: str, scope: tuple[str, list[object]], *extra: object) -> list[Row]:
        where, params = scope
        return self.db.execute(sql.format(scope=where), [*params, *extra])

    def summary(self, window: Window, recipient: str, audience: Sequence[str]) -> Summary:
        kept_counts, kept = self._kept(window, recipient)
        over_cap, dominant = self._quota(window)
        silences, questions = self._silences(window), self._questions(window)
        base = Summary(window, recipient, kept_counts=kept_counts, kept=kept,
                       over_cap=over_cap, dominant=dominant, silences=silences,
                       questions=questions, quiet=self._quiet(window))  # fmt: skip
        if not audience:
            return base
        scope = _scope(window, audience)
        top = self.rules.top
        bucket = bucket_seconds(window)
        kinds, hosts, dropped, dropped_events = self._heat(window, scope, bucket)
        columns = int(-(-(epoch(window.end) - epoch(window.start)) // bucket))
        logins = _listing(self._run(LOGINS.format(extra="AND e.username = 'root'", scope="{scope}"),
                                    scope, top), _login)  # fmt: skip
        return Summary(
            window,
            recipient,
            kinds=kinds,
            hosts=hosts,
            columns=tuple(window.start + timedelta(seconds=i * bucket) for i in range(columns)),
            users=_listing(self._run(USERS, scope, top), lambda r: UserRow(*_str1(r))),
            sources=_listing(self._run(SOURCES, scope, "login", top), _source),
            first_seen=_listing(self._run(FIRST_SEEN, scope, top), _login),
            root=logins,
            outside=self._outside(scope),
            failure_sources=_listing(self._run(SOURCES, scope, "failure", top), _source),
            bursts=self._bursts(scope),
            kept_counts=kept_counts,
            kept=kept,
            dropped=dropped,
            dropped_events=dropped_events,
            clocks=_listing(self._run(CLOCKS, scope, clock.SKEW, clock.SKEW, top), _clock),
            over_cap=over_cap,
            dominant=dominant,
            silences=base.silences,
            questions=base.questions,
            quiet=base.quiet,
            new_failure_sources=int(self._run(NEW_FAILURE_SOURCES, scope)[0][0] or 0),
            sessions=_listing(self._run(SESSIONS, scope, top), _session),
        )

    def _quiet(self, window: Window) -> Listing[QuietRow]:
        """Store-wide, for every recipient: the hosts quiet at the window's end."""
        after = self.rules.quiet_after
        states = host_states(self.db.execute(*quiet_read(window.end - timedelta(seconds=after))))
        found = [QuietRow(q.name, q.since, q.stopped) for q in quiet(states, window.end, after)]
        return Listing(tuple(found[: self.rules.top]), len(found))

    def _quota(self, window: Window) -> tuple[Listing[QuotaRow], Growth | None]:
        """Store-wide, for every recipient: the hosts past a quota on the window's days, and
        a host that added more than half of the store's rows (at least DOMINANT_MIN / 2)."""
        days = (epoch(window.start) // 86400, (epoch(window.end) - 1) // 86400)
        rows = self.db.execute(OVER_CAP, (*days, self.rules.top))
        over = _listing(rows, lambda r: QuotaRow(str(r[0]), int(r[1]), int(r[2])))
        grown = self.db.execute(GROWTH, days)
        if not grown:
            return over, None
        host, mine, total, hosts = grown[0]
        dominant = Growth(str(host), int(mine), int(total), int(hosts))
        if dominant.hosts < 2 or 2 * dominant.rows <= max(dominant.total, DOMINANT_MIN):
            return over, None
        return over, dominant

    def _heat(
        self, window: Window, scope: tuple[str, list[object]], bucket: int
    ) -> tuple[dict[str, int], Listing[HostRow], Listing[tuple[str, int]], int]:
        start = epoch(window.start)
        columns = int(-(-(epoch(window.end) - start) // bucket))
        kinds: dict[str, int] = defaultdict(int)
        per_host: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        cells: dict[str, list[int]] = defaultdict(lambda: [0] * columns)
        where, params = scope
        rows = self.db.execute(HEAT.format(scope=where), [start, bucket, *params])
        for host, column, kind, count, root, dropped in rows:
            n = int(count)
            kinds[str(kind)] += n
            stats = per_host[str(host)]
            stats[0] += n
            stats[1] += n if kind == "login" else 0
            stats[2] += n if kind == "failure" else 0
            stats[3] += int(root)
            stats[4] += int(dropped)
            cells[str(host)][min(int(column), columns - 1)] += n
        ranked = sorted(per_host.items(), key=lambda item: (-item[1][0], item[0]))
        hosts = tuple(
            HostRow(h, s[0], s[1], s[2], s[3], s[4], tuple(cells[h]))
            for h, s in ranked[: self.rules.top]
        )
        # Cut to `top` like every list: 100k forged host names must not make a digest
        # too big to send (the total still counts them all).
        dropping = sorted(((h, s[4]) for h, s in per_host.items() if s[4]),
                          key=lambda p: (-p[1], p[0]))  # fmt: skip
        dropped = Listing(tuple(dropping[: self.rules.top]), len(dropping))
        return dict(kinds), Listing(hosts, len(per_host)), dropped, sum(n for _, n in dropping)

    def _outside(self, scope: tuple[str, list[object]]) -> Listing[LoginRow]:
        if not self.rules.outside:
            return Listing()
        ranges = " OR ".join(["(e.at >= ? AND e.at < ?)"] * len(self.rules.outside))
        sql = LOGINS.format(extra=f"AND ({ranges})", scope="{scope}")
        where, params = scope
        bounds = [epoch(t) for pair in self.rules.outside for t in pair]
        rows = self.db.execute(sql.format(scope=where), [*params, *bounds, self.rules.top])
        return _listing(rows, _login)

    def _bursts(self, scope: tuple[str, list[object]]) -> Listing[BurstRow]:
        # LAG's offset is an int from the config, formatted in (a parameter would be typed
        # BIGINT, which PostgreSQL's lag(value, integer) does not take).
        sql = BURSTS.format(lag=int(self.rules.burst_failures) - 1, scope="{scope}")
        rows = self._run(sql, scope, self.rules.burst_seconds, self.rules.top)
        return _listing(rows, lambda r: BurstRow(str(r[0]), int(r[1]), moment(int(r[2]))))

    def _silences(self, window: Window) -> Listing[Rule]:
        """The config's silences and the store's that were in force during ``window``."""
        configured = [r for r in self.rules.configured
                      if r.starts < window.end and r.until > window.start]  # fmt: skip
        stored, total = SilenceTable(self.db).during(window.start, window.end, self.rules.top)
        rows = (*configured, *stored)[: self.rules.top]
        return Listing(tuple(rows), total + len(configured))

    def _questions(self, window: Window) -> Listing[Question]:
        asked, total = QuestionTable(self.db).asked_during(window.start, window.end,
                                                           self.rules.top)  # fmt: skip
        return Listing(tuple(asked), total)

    def _kept(self, window: Window, recipient: str) -> tuple[dict[str, int], Listing[KeptRow]]:
        params = (recipient.lower(), epoch(window.start), epoch(window.end))
        counts = {str(a): int(n) for a, n in self.db.execute(KEPT_COUNTS, params)}
        rows = self.db.execute(KEPT, (*params, self.rules.top))
        kept = tuple(KeptRow(str(r[0]), moment(int(r[1])), *map(str, r[2:5])) for r in rows)
        return counts, Listing(kept, sum(counts.values()))


def _scope(window: Window, audience: Sequence[str]) -> tuple[str, list[object]]:
    marks = ", ".join("?" * len(audience))
    return (
        f"e.at >= ? AND e.at < ? AND e.audience IN ({marks})",
        [epoch(window.start), epoch(window.end), *audience],
    )


def _listing(rows: list[Row], make: Callable[[Row], T]) -> Listing[T]:
    """Rows whose last column is ``COUNT(*) OVER ()``."""
    return Listing(tuple(make(row[:-1]) for row in rows), int(rows[0][-1]) if rows else 0)


def _str1(row: Row) -> tuple[str, int, int, int, int]:
    return str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])


def _source(row: Row) -> SourceRow:
    return SourceRow(str(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _session(row: Row) -> SessionRow:
    return SessionRow(moment(int(str(row[0]))), str(row[1]), str(row[2]), float(str(row[3])))


def _login(row: Row) -> LoginRow:
    return LoginRow(moment(int(row[0])), str(row[1]), str(row[2]), str(row[3]), str(row[4]))


def _clock(row: Row) -> ClockRow:
    return ClockRow(str(row[0]), min(0, int(row[1])), max(0, int(row[2])), int(row[3]))
