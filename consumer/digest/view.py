"""What the digest templates see: a ``Summary`` as display strings (``display.visible``).

Like ``stages/notice.py`` for alerts: every stored field is hostile text, so each reaches the
templates made visible and cut to size, never raw; HTML escaping stays with autoescape.
Numbers are plain integers, identical in the text and the HTML part. Source addresses are
annotated here, at digest time, with reverse DNS and GeoIP (only the few listed ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from consumer.core import clock
from consumer.core.display import visible
from consumer.detect.words import length
from consumer.digest.summary import (
    ClockRow,
    Growth,
    HostRow,
    LoginRow,
    QuotaRow,
    SourceRow,
    Summary,
)
from consumer.questions.table import Question
from consumer.silences.rules import Rule
from consumer.store.quota import EVENTS_CAP, FIRST_SEEN_CAP

FIELD: Final = 64  # hosts, users, names in tables
# What a user said to "was this you?", beside the login.
ANSWERS: Final = {"yes": "said yes", "no": "said NO, not them (escalated)"}
SHADES: Final = (".", "░", "▒", "▓", "█")  # heat-map levels 0-4 in the text part
COLORS: Final = ("#f3f4f6", "#fde68a", "#fbbf24", "#f97316", "#b91c1c")
# (address) -> (rDNS name or None, forward-confirmed, "City, Country" or "")
Annotate = Callable[[str], tuple[str | None, bool, str]]


@dataclass(frozen=True)
class Source:
    address: str
    name: str  # "laptop.example.net" / "laptop.example.net (unverified)" / ""
    geo: str
    events: int
    users: int
    hosts: int


@dataclass(frozen=True)
class Login:
    when: str
    host: str
    user: str
    source: str
    action: str = ""


@dataclass(frozen=True)
class HeatRow:
    host: str
    cells: tuple[tuple[int, int], ...]  # (count, level 0-4)
    total: int

    @property
    def shades(self) -> str:
        return " ".join(SHADES[level] * 2 for _, level in self.cells)


@dataclass(frozen=True)
class DigestView:
    recipient: str
    start: str
    end: str
    zone: str
    key: str
    quiet: bool
    totals: tuple[tuple[str, int], ...]
    hosts: tuple[HostRow, ...]
    hosts_more: int
    columns: tuple[str, ...]  # one label per heat-map column ("" where none starts)
    column_caption: str  # what a column spans and what its label means
    heat: tuple[HeatRow, ...]
    legend: tuple[tuple[str, str, str], ...]  # (range label, shade, colour)
    users: tuple[tuple[str, int, int, int, int], ...]
    users_more: int
    sources: tuple[Source, ...]
    sources_more: int
    first_seen: tuple[Login, ...]
    root: tuple[Login, ...]
    root_more: int
    outside: tuple[Login, ...]
    outside_more: int
    failures: int
    failure_sources: tuple[Source, ...]
    failure_sources_more: int
    bursts: tuple[tuple[str, str, int, str], ...]  # (address, name, failures, first)
    burst_rule: str
    kept: tuple[Login, ...]
    kept_more: int
    dropped: tuple[tuple[str, int], ...]
    dropped_more: int
    clocks: tuple[tuple[str, str], ...]  # (host, "host clock off by …; N events")
    clocks_more: int
    clock_skew: str  # "5 min": how far off a host clock is listed
    over_cap: tuple[tuple[str, str], ...]  # (host, "N events counted, not stored; …")
    over_cap_more: int
    dominant: str  # "" or "web-1 added 83% of the rows the store gained (…)"
    dead: str
    working_hours: str
    # (what, matchers, for whom, from - until, by whom, comment), each made visible.
    silences: tuple[tuple[str, str, str, str, str, str], ...] = ()
    silences_more: int = 0
    # (asked when, user, host, source, asked whom, the answer), each made visible.
    questions: tuple[tuple[str, str, str, str, str, str], ...] = ()
    questions_more: int = 0
    # (host, "gone since …" / "stopped since …"): hosts that stopped reporting (``quiet``
    # is the empty window's "all quiet").
    quiet_hosts: tuple[tuple[str, str], ...] = ()
    quiet_hosts_more: int = 0
    new_failure_sources: int = 0
    # (ended when, user, host, "1 h 05 min"): sessions that ended, the longest first.
    sessions: tuple[tuple[str, str, str, str], ...] = ()
    sessions_more: int = 0

    @property
    def legend_colors(self) -> tuple[str, ...]:
        return COLORS

    @property
    def ruler(self) -> str:
        """The text part's label line: each label over its column of ``HeatRow.shades``."""
        return " ".join(f"{label:<2}" for label in self.columns).rstrip()


def _text(value: str) -> str:
    return visible(value, FIELD) or "(none)"


def annotate_all(addresses: Iterable[str], annotate: Annotate) -> dict[str, tuple[str, str]]:
    """(name label, geo) per address; lookups run side by side (each has its own timeout)."""
    unique = sorted(set(addresses))
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = dict(zip(unique, pool.map(annotate, unique), strict=True))
    labels = {}
    for address, (name, verified, geo) in found.items():
        label = "" if not name else name if verified else f"{name} (unverified)"
        labels[address] = (visible(label, FIELD), visible(geo, FIELD))
    return labels


def build_view(
    summary: Summary,
    zone: ZoneInfo,
    annotate: Annotate,
    *,
    working_hours: str,
    burst_rule: str,
) -> DigestView:
    """The template context of one digest."""
    listed = [s.address for s in (*summary.sources.rows, *summary.failure_sources.rows)]
    listed += [b.address for b in summary.bursts.rows]
    names = annotate_all(listed, annotate)

    def when(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def source(row: SourceRow) -> Source:
        name, geo = names.get(row.address, ("", ""))
        return Source(_text(row.address), name, geo, row.events, row.users, row.hosts)

    def login(row: LoginRow, action: str = "") -> Login:
        action = action or ANSWERS.get(row.answer, "")
        return Login(when(row.at), _text(row.host), _text(row.user),
                     visible(row.source, FIELD) or "(local)", action)  # fmt: skip

    def silence(rule: Rule) -> tuple[str, str, str, str, str, str]:
        matchers = " ".join(f"{n}={','.join(v)}" for n, v in rule.matchers().items())
        what = f"{rule.kind} {rule.id}"
        span = f"{when(rule.starts) if rule.origin != 'config' else 'config'} - {when(rule.until)}"
        return (what, visible(matchers, 2 * FIELD), visible(", ".join(rule.to), FIELD)
                or "everyone", span, visible(rule.created_by, FIELD),
                visible(rule.comment, 2 * FIELD))  # fmt: skip

    def question(q: Question) -> tuple[str, str, str, str, str, str]:
        said = ANSWERS.get(q.verdict, "unanswered")
        if q.flag:
            said += " (a yes and a no within seconds: likely a mail scanner)"
        source = visible(q.client_ip, FIELD) or "(local)"
        return (when(q.asked_at), _text(q.user), _text(q.host), source, visible(q.asked, FIELD),
                said)  # fmt: skip

    peak = max((c for h in summary.hosts.rows for c in h.cells), default=0)
    return DigestView(
        recipient=summary.recipient,
        start=when(summary.window.start),
        end=when(summary.window.end),
        zone=str(zone.key),
        key=summary.window.key,
        quiet=summary.empty,
        totals=_totals(summary),
        hosts=tuple(_host(h) for h in summary.hosts.rows),
        hosts_more=summary.hosts.more,
        columns=column_labels(summary.columns, summary.window.end, zone),
        column_caption=column_caption(summary.columns, summary.window.end),
        heat=tuple(_heat(h, peak) for h in summary.hosts.rows),
        legend=_legend(peak),
        users=tuple(
            (_text(u.user), u.events, u.logins, u.failures, u.hosts) for u in summary.users.rows
        ),
        users_more=summary.users.more,
        sources=tuple(source(s) for s in summary.sources.rows),
        sources_more=summary.sources.more,
        first_seen=tuple(login(r) for r in summary.first_seen.rows),
        root=tuple(login(r) for r in summary.root.rows),
        root_more=summary.root.more,
        outside=tuple(login(r) for r in summary.outside.rows),
        outside_more=summary.outside.more,
        failures=summary.kinds.get("failure", 0),
        failure_sources=tuple(source(s) for s in summary.failure_sources.rows),
        failure_sources_more=summary.failure_sources.more,
        bursts=tuple(
            (_text(b.address), names.get(b.address, ("", ""))[0], b.bursts, when(b.first))
            for b in summary.bursts.rows
        ),
        burst_rule=burst_rule,
        kept=tuple(
            login(LoginRow(k.at, k.host, k.user, k.source), k.action) for k in summary.kept.rows
        ),
        kept_more=summary.kept.more,
        dropped=tuple((_text(h), n) for h, n in summary.dropped.rows),
        dropped_more=summary.dropped.more,
        clocks=tuple((_text(c.host), _clock(c)) for c in summary.clocks.rows),
        clocks_more=summary.clocks.more,
        clock_skew=clock.span(clock.SKEW),
        over_cap=tuple((_text(q.host), _over(q)) for q in summary.over_cap.rows),
        over_cap_more=summary.over_cap.more,
        dominant=_dominant(summary.dominant),
        dead="unknown" if summary.dead is None else str(summary.dead),
        working_hours=working_hours,
        silences=tuple(silence(r) for r in summary.silences.rows),
        silences_more=summary.silences.more,
        questions=tuple(question(q) for q in summary.questions.rows),
        questions_more=summary.questions.more,
        quiet_hosts=tuple(
            (_text(q.host), f"{'stopped' if q.stopped else 'gone'} since {when(q.since)}")
            for q in summary.quiet.rows
        ),
        quiet_hosts_more=summary.quiet.more,
        new_failure_sources=summary.new_failure_sources,
        sessions=tuple(
            (when(r.at), _text(r.user), _text(r.host), length(r.seconds))
            for r in summary.sessions.rows
        ),
        sessions_more=summary.sessions.more,
    )


def _step(columns: tuple[datetime, ...], end: datetime) -> timedelta:
    return columns[1] - columns[0] if len(columns) > 1 else end - columns[0]


def column_labels(columns: tuple[datetime, ...], end: datetime, zone: ZoneInfo) -> tuple[str, ...]:
    """The label of each heat-map column: the local hour (``%H``) that starts inside it.

    A column of a day or more shows the day of the month that starts inside it instead. A
    30-minute column labelled with its own start hour read "00 00 01 01…", and every third of
    those (what the HTML showed) "00 01 03 04": hours 02 and 05 seemed to be missing.
    """
    if not columns:
        return ()
    step = _step(columns, end)
    daily = step >= timedelta(days=1)
    labels = []
    for start in columns:
        local = start.astimezone(zone)
        first = local.replace(minute=0, second=0, microsecond=0)
        if daily:
            first = first.replace(hour=0)
        if first < local:
            first += timedelta(days=1) if daily else timedelta(hours=1)
        inside = first < min(start + step, end)
        labels.append(first.strftime("%d" if daily else "%H") if inside else "")
    return tuple(labels)


def column_caption(columns: tuple[datetime, ...], end: datetime) -> str:
    """What a column spans and what its label means ("each column is 30 minutes; …")."""
    if not columns:
        return ""
    secs = int(_step(columns, end).total_seconds())
    unit = "day" if secs >= 86400 else "hour"
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size and secs % size == 0:
            count = secs // size
            span = f"{count} {name}{'' if count == 1 else 's'}"
            break
    else:
        span = f"{secs} seconds"
    what = "the day of the month" if unit == "day" else "the hour"
    return f"each column is {span}; a label is {what} that starts in it"


def _host(row: HostRow) -> HostRow:
    return HostRow(_text(row.host), row.events, row.logins, row.failures, row.root,
                   row.dropped, row.cells)  # fmt: skip


def _totals(summary: Summary) -> tuple[tuple[str, int], ...]:
    kinds = summary.kinds
    named = ("login", "logout", "failure", "sudo", "su", "console")
    other = summary.total - sum(kinds.get(k, 0) for k in named)
    return (
        ("events", summary.total),
        ("logins", kinds.get("login", 0)),
        ("failed logins", kinds.get("failure", 0)),
        ("logouts", kinds.get("logout", 0)),
        ("other PAM events", other),
        ("hosts", summary.hosts.total),
        ("users", summary.users.total),
        ("login sources", summary.sources.total),
        ("first-seen sources", summary.first_seen.total),
        ("root logins", summary.root.total),
        ("logins outside working hours", summary.outside.total),
        ("silenced", summary.kept_counts.get("silenced", 0)),
        (
            "folded by flood control",
            summary.kept_counts.get("folded", 0) + summary.kept_counts.get("burst", 0),
        ),
        ("events dropped by host spools", summary.dropped_events),
        ("hosts that stopped reporting", summary.quiet.total),
        # After the rest: digest.subject.j2 reads logins and hosts by their place.
        ("sudo and su sessions", kinds.get("sudo", 0) + kinds.get("su", 0)),
        ("console logins", kinds.get("console", 0)),
    )


def _over(row: QuotaRow) -> str:
    parts = []
    if row.events:
        parts.append(f"{row.events:,} event(s) counted, not stored (over {EVENTS_CAP:,} a day)")
    if row.first_seen:
        parts.append(
            f"{row.first_seen:,} first-seen row(s) not recorded (over {FIRST_SEEN_CAP:,} a"
            " day: its logins read as from new sources)"
        )
    return "; ".join(parts)


def _dominant(growth: Growth | None) -> str:
    if growth is None:
        return ""
    share = 100 * growth.rows // max(growth.total, 1)
    return (
        f"{_text(growth.host)} added {share}% of the rows the store gained on these days"
        f" ({growth.rows:,} of {growth.total:,}, from {growth.hosts} hosts)"
    )


def _clock(row: ClockRow) -> str:
    """The worst offset of the host's clock (either way), and how many events were off."""
    worst = row.ahead if row.ahead >= -row.behind else row.behind
    return f"{clock.describe(worst)}; {row.events} event(s)"


def _level(count: int, peak: int) -> int:
    return 0 if count <= 0 or peak <= 0 else max(1, -(-4 * count // peak))


def _heat(row: HostRow, peak: int) -> HeatRow:
    return HeatRow(_text(row.host), tuple((c, _level(c, peak)) for c in row.cells), row.events)


def _legend(peak: int) -> tuple[tuple[str, str, str], ...]:
    """Each level's range of events per cell: level n holds counts up to n/4 of the peak."""
    legend = [("0", SHADES[0], COLORS[0])]
    low = 1
    for level in range(1, 5):
        high = peak * level // 4
        if high >= low:
            label = str(low) if high == low else f"{low}-{high}"
            legend.append((label, SHADES[level], COLORS[level]))
            low = high + 1
    return tuple(legend)
