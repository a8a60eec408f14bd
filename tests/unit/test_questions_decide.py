"""The pure decisions of "was this you?" (consumer/questions/decide.py, target.py), by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumer.core.decisions import Action
from consumer.questions.decide import NO, YES, Given, ask, effect, escalation, likely_scanner
from consumer.questions.target import target_of
from schemas.actions import NotifyUserConfig, portable
from schemas.config import Route
from schemas.event import Outcome, PamType
from tests.support.factories import event

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ASK = (Route(to=("ops@x.org",), ask=True),)
NOTIFY = NotifyUserConfig(template="{user}@example.org", users={"Bob": "receiver:bobchat"},
                          skip=("svc-*",))  # fmt: skip


def at(seconds: float, answer: str) -> Given:
    return Given(answer, T0 + timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("before", "new", "escalate", "verdict", "flag"),
    [
        ([], at(0, NO), True, NO, ""),
        ([], at(0, YES), False, YES, ""),
        ([at(0, YES)], at(3, NO), True, NO, "likely-scanner"),  # both links within seconds
        ([at(0, NO)], at(2, YES), False, NO, "likely-scanner"),  # a yes never undoes a no
        ([at(0, YES)], at(600, NO), True, NO, ""),  # a person changing their mind
        ([at(0, NO)], at(600, YES), False, NO, ""),
        ([at(0, NO)], at(60, NO), True, NO, ""),  # no always escalates (sent once per recipient)
    ],
)
def test_what_an_answer_does(
    before: list[Given], new: Given, escalate: bool, verdict: str, flag: str
) -> None:
    done = effect(before, new)
    assert (done.escalate, done.verdict, done.flag) == (escalate, verdict, flag)
    assert done.reason


@pytest.mark.parametrize(
    ("answers", "scanner"),
    [
        ([at(0, YES), at(10, NO)], True),
        ([at(0, YES), at(10.5, NO)], False),
        ([at(0, YES), at(1, YES)], False),
        ([at(0, NO), at(0.2, NO)], False),
        ([at(30, NO), at(0, YES), at(29, YES)], True),
        ([], False),
    ],
)
def test_likely_a_scanner(answers: list[Given], scanner: bool) -> None:
    assert likely_scanner(answers) is scanner


LOGIN = event(user="alice")
FAILED = event(user="alice", pam_type=PamType.AUTH, outcome=Outcome.FAILURE)


ASKING = [
    ("a login a route asks about", LOGIN, ASK, "alice@example.org", 0, "alice@example.org"),
    ("no route asks", LOGIN, (Route(to=("ops@x.org",)),), "alice@example.org", 0, None),
    ("a failed login: the name is the stranger's", FAILED, ASK, "alice@example.org", 0, None),
    ("no target", LOGIN, ASK, None, 0, None),
    ("the budget is spent", LOGIN, ASK, "alice@example.org", 5, None),
    ("one question left", LOGIN, ASK, "alice@example.org", 4, "alice@example.org"),
]


@pytest.mark.parametrize("row", ASKING, ids=[row[0] for row in ASKING])
def test_whether_to_ask(row: tuple[Any, ...]) -> None:
    case, login, routes, recipient, asked, who = row
    decided = ask(login, routes, recipient, "why", asked=asked, budget=5)
    assert decided.recipient == who, case
    assert decided.reason


@pytest.mark.parametrize(
    ("user", "target"),
    [
        ("alice", "alice@example.org"),
        ("Alice.Smith", "Alice.Smith@example.org"),  # case kept
        ("Bob", "receiver:bobchat"),  # the table first, exactly
        ("bob", "bob@example.org"),
        ("root", None),
        ("svc-backup", None),  # skip
        ("-x", None),  # not portable: starts with -
        ("a b", None),
        ("evil@attacker.example", None),
        ("x" * 33, None),
        ("ünïcode", None),
        ("eve\r\nBcc: x@y", None),
        ("", None),
    ],
)
def test_where_a_user_question_goes(user: str, target: str | None) -> None:
    assert target_of(user, NOTIFY).recipient == target


def test_the_portable_rule() -> None:
    assert portable("a") and portable("_svc.1-x") and portable("x" * 32)
    assert not portable("x" * 33) and not portable("-a") and not portable("a/b")


def test_without_a_template_only_the_table_answers() -> None:
    notify = NotifyUserConfig(users={"carol": "carol@x.org"})
    assert target_of("carol", notify).recipient == "carol@x.org"
    assert target_of("dave", notify).recipient is None


@pytest.mark.parametrize(
    ("routes", "notify", "who"),
    [
        (
            (Route(to=("SEC@x.org",), escalate=True, kinds=("failure",)), Route(to=("ops@x.org",))),
            NotifyUserConfig(),
            ["sec@x.org"],
        ),
        (
            (Route(to=("sec@x.org",), escalate=True, hosts=("db-*",)), Route(to=("ops@x.org",))),
            NotifyUserConfig(escalate_to=("receiver:pager",)),
            ["receiver:pager"],
        ),
        (
            (Route(to=("ops@x.org",)), Route(to=("dba@x.org",), mode="digest")),
            NotifyUserConfig(),
            ["ops@x.org"],
        ),  # nobody escalates: every immediate route
        (
            (Route(to=("sec@x.org",), escalate=True),),
            NotifyUserConfig(escalate_to=("sec@x.org",)),
            ["sec@x.org"],
        ),  # once each
    ],
)
def test_who_hears_a_no(
    routes: tuple[Route, ...], notify: NotifyUserConfig, who: list[str]
) -> None:
    decided = escalation(routes, notify, event(host="web-01"))
    assert [d.recipient for d in decided] == who
    assert all(d.action is Action.IMMEDIATE and d.reason for d in decided)
