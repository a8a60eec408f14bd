"""What a posted form does: record an answer (a "No" escalates), make a silence from a link,
expire a silence. HTTP stays in ``app``; this module takes values and the store.

Answering needs only the link and the confirm page's nonce: escalating by mistake is the
safe direction, and the user is not an operator. Reducing alerting (an ack, a silence)
needs a signed-in operator; the link only fills in the form. Each link is spent by its
POST: an answer link answers once (``answer``'s key), a silence link makes one silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from consumer.core.links import ACK, ANSWER_NO, ANSWER_YES, SILENCE_HOST, Claims
from consumer.questions.decide import NO, YES, Given
from consumer.questions.table import Answered, Question, QuestionTable
from consumer.silences.rules import ACK as ACK_KIND
from consumer.silences.rules import SILENCE, Rule, host_network, literal
from consumer.silences.table import SilenceTable
from schemas.errors import LinkError

# What each link offers, and for how long by default (the form may change it).
DEFAULT_FOR: Final = {ACK: timedelta(days=1), SILENCE_HOST: timedelta(hours=1)}
OTHERWISE_FOR: Final = timedelta(days=1)
LONGEST: Final = timedelta(days=30)
CHOICES: Final = (("1h", timedelta(hours=1)), ("4h", timedelta(hours=4)),
                  ("1d", timedelta(days=1)), ("7d", timedelta(days=7)))  # fmt: skip


def answer_of(action: str) -> str:
    """``yes`` or ``no`` for an answer link's action."""
    return {ANSWER_YES: YES, ANSWER_NO: NO}[action]


def question_of(table: QuestionTable, claims: Claims) -> Question:
    """The question an answer link names.

    Raises:
        LinkError: ``forged`` (no such question, or the link names another recipient).
        StoreError: the store failed.
    """
    found = table.get(claims.scope.get("question", ""))
    if found is None or found.asked.lower() != claims.recipient.lower():
        raise LinkError("forged", "the link names no question of ours")
    return found


def answer(
    table: QuestionTable, claims: Claims, now: datetime, *, client: str, agent: str
) -> Answered:
    """Record the answer of ``claims`` (a verified answer link) from ``client``.

    Raises:
        LinkError: ``used`` or ``forged``. StoreError: the store failed.
    """
    question = question_of(table, claims)
    return table.answer(question.id, claims.id, Given(answer_of(claims.action), now),
                        client=client, agent=agent)  # fmt: skip


@dataclass(frozen=True)
class Offer:
    """What a silence link fills the form with."""

    kind: str  # ack or silence
    title: str
    matchers: dict[str, tuple[str, ...]]
    lasting: timedelta
    event_id: str


def offer(claims: Claims) -> Offer:
    """The silence (or ack) a verified silence link offers; its scope's text is literal."""
    scope = claims.scope
    host, user, source = scope.get("host", ""), scope.get("user", ""), scope.get("source", "")
    matchers: dict[str, tuple[str, ...]] = {}
    if host:
        matchers["hosts"] = (literal(host),)
    if claims.action != SILENCE_HOST and user:
        matchers["users"] = (literal(user),)
    network = host_network(source)
    if claims.action != SILENCE_HOST and network:
        matchers["sources"] = (network,)
    titles = {ACK: "Acknowledge this alert", SILENCE_HOST: "Silence this host"}
    return Offer(
        kind=ACK_KIND if claims.action == ACK else SILENCE,
        title=titles.get(claims.action, "Silence this user from this source"),
        matchers=matchers,
        lasting=DEFAULT_FOR.get(claims.action, OTHERWISE_FOR),
        event_id=scope.get("event", ""),
    )


def make_silence(
    table: SilenceTable,
    claims: Claims,
    *,
    operator: str,
    lasting: timedelta,
    comment: str,
    now: datetime,
) -> Rule:
    """Store the silence a link offered, made by ``operator`` for ``lasting``.

    Raises:
        SilenceRefused: the rule has no matcher, or the operator's cap is reached.
        StoreError: the store failed.
    """
    offered = offer(claims)
    lasting = min(max(lasting, timedelta(minutes=1)), LONGEST)
    return table.add(Rule(
        id="", kind=offered.kind, starts=now, ends=now + lasting, comment=comment[:500],
        created_by=operator, created_at=now, event_id=offered.event_id,
        hosts=offered.matchers.get("hosts", ()), users=offered.matchers.get("users", ()),
        sources=offered.matchers.get("sources", ())))  # fmt: skip


def lasting_of(choice: str, default: timedelta) -> timedelta:
    """The form's duration choice (``1h`` …), else ``default``."""
    return dict(CHOICES).get(choice, default)
