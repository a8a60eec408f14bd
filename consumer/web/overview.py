"""What the operator page shows, read from the store (reads only): recent events with their
decisions, the silences and acks in force, the questions nobody answered yet.

Recent events are the digest's (``digest_event``, newest arrivals first), each with what
the worker decided for whom: the sent log's keys (``alert:EVENT:RECIPIENT``: mailed), the
decision log (silenced, folded, burst), and else "digest only"; and the user's answer when
one was asked. Every text here is a host's or a user's: the page shows it made visible
(``display.visible``) and HTML-escaped (Jinja's autoescape).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from consumer.core.display import visible
from consumer.questions.table import Question, QuestionTable
from consumer.silences.rules import Rule
from consumer.silences.table import SilenceTable
from consumer.store import Store

EVENTS: Final = 50
SHOWN: Final = 120  # characters of a hostile value on the page


@dataclass(frozen=True)
class EventLine:
    at: str
    host: str
    user: str
    kind: str
    source: str
    decisions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class SilenceLine:
    id: str
    kind: str
    origin: str
    matchers: str
    to: str
    until: str
    age: str
    created_by: str
    comment: str
    expirable: bool


@dataclass(frozen=True)
class QuestionLine:
    id: str
    asked: str
    host: str
    user: str
    source: str
    at: str
    age: str


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def age(since: datetime, now: datetime) -> str:
    """``3d 4h``, ``2h 5m``, ``12m``: how long ago ``since`` was."""
    secs = max(0, int((now - since).total_seconds()))
    days, hours, minutes = secs // 86400, secs % 86400 // 3600, secs % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def silence_line(rule: Rule, now: datetime) -> SilenceLine:
    shown = "; ".join(f"{name}={','.join(values)}" for name, values in rule.matchers().items())
    return SilenceLine(
        id=rule.id, kind=rule.kind, origin=rule.origin, matchers=visible(shown, 2 * SHOWN),
        to=visible(", ".join(rule.to), SHOWN) or "everyone", until=_when(rule.until),
        age=age(rule.created_at, now) if rule.created_at else "-",
        created_by=visible(rule.created_by, 64), comment=visible(rule.comment, 2 * SHOWN),
        expirable=rule.origin != "config",
    )  # fmt: skip


def question_line(q: Question, now: datetime) -> QuestionLine:
    return QuestionLine(id=q.id, asked=visible(q.asked, 80), host=visible(q.host, SHOWN),
                        user=visible(q.user, SHOWN), source=visible(q.client_ip, 64),
                        at=_when(q.asked_at), age=age(q.asked_at, now))  # fmt: skip


class Overview:
    """The operator page's reads; every method raises ``StoreError`` on a store failure."""

    def __init__(self, store: Store, configured: tuple[Rule, ...]) -> None:
        self.db = store.db
        self.silences = SilenceTable(store.db)
        self.questions = QuestionTable(store.db)
        self.configured = configured

    def open_silences(self, now: datetime) -> list[SilenceLine]:
        rules = [r for r in self.configured if r.in_force(now)] + self.silences.open(now)
        return [silence_line(rule, now) for rule in rules]

    def unanswered(self, now: datetime, limit: int = 50) -> list[QuestionLine]:
        return [question_line(q, now) for q in self.questions.unanswered(now, limit)]

    def events(self, limit: int = EVENTS) -> list[EventLine]:
        rows = self.db.execute(
            "SELECT e.event_id, e.arrived_at, e.host, e.username, e.kind, e.client_ip,"
            " e.audience, q.verdict, q.flag FROM digest_event e"
            " LEFT JOIN question q ON q.id = e.event_id"
            " ORDER BY e.arrived_at DESC, e.event_id LIMIT ?",
            (limit,),
        )
        decided = self._decisions([(str(r[0]), str(r[6]).split()) for r in rows])
        lines = []
        for event_id, at, host, user, kind, source, _, verdict, flag in rows:
            said = {"yes": "said yes", "no": "said NO"}.get(str(verdict or ""), "")
            if said and flag:
                said += " (likely a scanner)"
            lines.append(EventLine(
                at=_when(datetime.fromtimestamp(int(at), UTC)), host=visible(str(host), SHOWN),
                user=visible(str(user), SHOWN), kind=str(kind), source=visible(str(source), 64),
                decisions=decided.get(str(event_id)) or ("digest only",), answer=said))  # fmt: skip
        return lines

    def _decisions(self, events: list[tuple[str, list[str]]]) -> dict[str, tuple[str, ...]]:
        """Per event: "mailed R" for each sent-log key of its audience (the worker's key
        ``alert:EVENT:RECIPIENT``), and "silenced for R" and the like from the decision log;
        two queries for the whole page."""
        keys = {f"alert:{e}:{r}": (e, r) for e, audience in events for r in audience}
        found: dict[str, list[str]] = {e: [] for e, _ in events}
        if keys:
            marks = ", ".join("?" * len(keys))
            sent = self.db.execute(f"SELECT key FROM delivery_log WHERE key IN ({marks})",  # noqa: S608
                                   list(keys))  # fmt: skip
            for (key,) in sent:
                event_id, recipient = keys[str(key)]
                found[event_id].append(f"mailed {visible(recipient, 80)}")
        if events:
            marks = ", ".join("?" * len(events))
            kept = self.db.execute(
                f"SELECT event_id, recipient, action FROM decision_log WHERE event_id IN ({marks})"  # noqa: S608
                " ORDER BY recipient",
                [e for e, _ in events],
            )
            for event_id, recipient, action in kept:
                found[str(event_id)].append(f"{action} for {visible(str(recipient), 80)}")
        return {e: tuple(lines) for e, lines in found.items()}
