"""The pure decisions of "was this you?": ask or not, what an answer does, who hears a "No".

- ``ask``: a successful login that a route with ``ask = true`` matches, of a user with a
  target (``target.target_of``), while that target's question budget has room.
- ``effect``: "No" always escalates, at once, and the verdict stays "no" whatever comes
  after; "Yes" never silences or undoes anything, it is only recorded. A yes and a no to
  the same question within ``SCANNER_WINDOW_S`` of each other are flagged "likely a
  scanner" (``likely_scanner``): a person does not change their mind that fast, a mail
  scanner that follows both links does.
- ``escalation``: the recipients of a "No": the routes marked ``escalate = true`` whose
  host and user globs match the login, and ``[notify_user] escalate_to``; with neither,
  every ``immediate`` route that matches the login (a "No" must reach someone).

Each returns its reason, for the log line, the page and the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from consumer.core.decisions import Action, Decision
from consumer.core.display import quoted
from consumer.core.routing import globs_match, route_matches
from consumer.core.system import LOGIN_DISOWNED
from schemas.actions import NotifyUserConfig
from schemas.config import Route
from schemas.event import LoginEvent

YES: Final = "yes"
NO: Final = "no"
LIKELY_SCANNER: Final = "likely-scanner"
SCANNER_WINDOW_S: Final = 10.0
# The system alert a "No" raises (routes may name it in `kinds`).
DISOWNED: Final = LOGIN_DISOWNED


@dataclass(frozen=True)
class Ask:
    """Whether to ask ``recipient`` about the login; ``reason`` says why (not)."""

    recipient: str | None
    reason: str


def ask(
    event: LoginEvent,
    routes: Sequence[Route],
    recipient: str | None,
    why: str,
    *,
    asked: int,
    budget: int,
) -> Ask:
    """Ask ``recipient`` (from ``target_of``, ``why`` its reason) about ``event``?
    ``asked``: questions that recipient got within the flood window; ``budget``: how many
    it may get."""
    if not any(route.ask and route_matches(route, event) for route in routes):
        return Ask(None, "no route with ask = true matches")
    if event.kind != "login":
        return Ask(None, f"a {event.kind} is never asked about: only a successful login")
    if recipient is None:
        return Ask(None, why)
    if asked >= budget:
        return Ask(None, f"{quoted(recipient)} got {asked} questions within the flood window"
                         f" ([notify_user] flood_max {budget})")  # fmt: skip
    return Ask(recipient, why)


@dataclass(frozen=True)
class Given:
    """One answer as stored: what, and when."""

    answer: str
    at: datetime


@dataclass(frozen=True)
class Effect:
    """What an answer does: escalate or not, the question's verdict and flag, and why."""

    escalate: bool
    verdict: str
    flag: str
    reason: str


def likely_scanner(answers: Sequence[Given], within: float = SCANNER_WINDOW_S) -> bool:
    """A yes and a no within ``within`` seconds of each other."""
    yes = [a.at for a in answers if a.answer == YES]
    no = [a.at for a in answers if a.answer == NO]
    return any(abs((y - n).total_seconds()) <= within for y in yes for n in no)


def effect(before: Sequence[Given], new: Given) -> Effect:
    """What ``new`` does, after the answers ``before`` it to the same question."""
    every = [*before, new]
    flag = LIKELY_SCANNER if likely_scanner(every) else ""
    scanner = "; a yes and a no within seconds: likely a mail scanner" if flag else ""
    if new.answer == NO:
        return Effect(True, NO, flag, f"the user said it was not them: escalated{scanner}")
    if new.answer != YES:
        raise ValueError(f"an answer is yes or no, not {new.answer!r}")
    if any(a.answer == NO for a in before):
        return Effect(False, NO, flag, f"a yes after a no changes nothing{scanner}")
    return Effect(
        False, YES, flag, f"the user said it was them: recorded, nothing silenced{scanner}"
    )


def escalation(
    routes: Sequence[Route], notify: NotifyUserConfig, event: LoginEvent
) -> tuple[Decision, ...]:
    """One IMMEDIATE decision per recipient of a "No" about ``event`` (the login)."""
    about = f"{quoted(event.user)} on host {quoted(event.host)} said it was not them"
    chosen: dict[str, Decision] = {}
    for index, route in enumerate(routes):
        if route.escalate and _login_matches(route, event):
            for recipient in route.to:
                chosen.setdefault(recipient.lower(), Decision(
                    action=Action.IMMEDIATE, recipient=recipient.lower(), route=index,
                    reason=f"route #{index + 1} has escalate = true: {about}"))  # fmt: skip
    for recipient in notify.escalate_to:
        chosen.setdefault(recipient.lower(), Decision(
            action=Action.IMMEDIATE, recipient=recipient.lower(),
            reason=f"[notify_user] escalate_to: {about}"))  # fmt: skip
    if chosen:
        return tuple(chosen.values())
    for index, route in enumerate(routes):
        if route.mode == "immediate" and route_matches(route, event):
            for recipient in route.to:
                why = f"no route escalates, route #{index + 1} is immediate: {about}"
                chosen.setdefault(recipient.lower(), Decision(
                    action=Action.IMMEDIATE, recipient=recipient.lower(), route=index,
                    reason=why))  # fmt: skip
    return tuple(chosen.values())


def _login_matches(route: Route, event: LoginEvent) -> bool:
    """An escalating route's host and user globs (its kinds name what it alerts on, not
    whom it escalates to)."""
    return globs_match(route.hosts, event.host.lower(), fold=True) and globs_match(
        route.users, event.user
    )
