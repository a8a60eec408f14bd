"""policy.decide: a table of events, configs and flood states → decisions with reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumer.core.decisions import Action, Decision, FloodCount, PolicyState
from consumer.stages.policy import Policy
from schemas.config import parse_config
from schemas.errors import ConfigError
from schemas.event import Outcome, PamType
from tests.support.factories import T0, enriched, event

CONFIG = """
[policy]
flood_max = 3
flood_window = "10m"
flood_max_fleet = 8

[[route]]            # 1: nobody pages anyone about the CI user
to = ["ops@example.org"]
users = ["ci-*"]
mode = "ignore"

[[route]]            # 2: root anywhere to security at once
to = ["sec@example.org"]
users = ["root"]

[[route]]            # 3: production hosts to ops
to = ["ops@example.org", "Sec@example.org"]
hosts = ["web-*", "db-[0-9]*"]
kinds = ["login", "failure"]

[[route]]            # 4: the rest goes to the digest
to = ["ops@example.org"]
mode = "digest"

[[silence]]
until = 2026-11-26T13:00:00Z
hosts = ["db-*"]
users = ["dba"]
comment = "maintenance window CHG-42"

[[silence]]
until = 2026-11-26T11:00:00Z   # already over
hosts = ["web-*"]

[[silence]]
until = 2026-11-27T00:00:00Z
sources = ["203.0.113.0/24"]
to = ["sec@example.org"]
"""
POLICY = Policy(parse_config(CONFIG))
QUIET = PolicyState()


FAIL = {"pam_type": PamType.AUTH, "outcome": Outcome.FAILURE}


def actions_text(decisions: tuple[Decision, ...]) -> str:
    """``ops:immediate sec:silenced`` — recipients' local parts and actions, sorted."""
    return " ".join(
        sorted(f"{(d.recipient or '-').split('@')[0]}:{d.action.value}" for d in decisions)
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, "ops:immediate sec:immediate", id="web login"),
        pytest.param({"host": "WEB-01"}, "ops:immediate sec:immediate", id="host case-insensitive"),
        pytest.param({"user": "ci-x"}, "ops:ignore sec:immediate", id="first route per recipient"),
        pytest.param({"user": "root", "host": "lab"}, "ops:digest sec:immediate", id="all matches"),
        pytest.param({"host": "lab-3"}, "ops:digest", id="catch-all digest"),
        pytest.param({"host": "db-1", "user": "dba"}, "ops:silenced sec:silenced", id="silenced"),
        pytest.param({"host": "db-1", "user": "dba2"}, "ops:immediate sec:immediate", id="exact"),
        pytest.param({"client_ip": "203.0.113.9"}, "ops:immediate sec:silenced", id="by source"),
        pytest.param(FAIL, "ops:immediate sec:immediate", id="failure kind"),
        pytest.param({"pam_type": PamType.CLOSE_SESSION}, "ops:digest", id="logout not in kinds"),
        pytest.param({"host": "web-*"}, "ops:immediate sec:immediate", id="literal host glob"),
        pytest.param({"host": "db-x", "user": "[!a]*"}, "ops:digest", id="literal user glob"),
        pytest.param({"user": "root\r\nBcc: x@y"}, "ops:immediate sec:immediate", id="not root"),
    ],
)
def test_routes_and_silences(fields: dict[str, object], expected: str) -> None:
    assert actions_text(POLICY.decide(enriched(event(**fields)), QUIET, T0)) == expected


def test_silence_ends_at_its_until() -> None:
    login = enriched(event(host="db-1", user="dba"))
    later = T0 + timedelta(hours=1)
    assert actions_text(POLICY.decide(login, QUIET, later)) == "ops:immediate sec:immediate"


def test_no_route_is_one_ignore_with_a_reason() -> None:
    policy = Policy(parse_config('[[route]]\nto = ["a@example.org"]\nhosts = ["x"]'))
    (decision,) = policy.decide(enriched(event(user="evil\r\n\u202e")), QUIET, T0)
    assert decision == Decision(
        action=Action.IGNORE,
        reason='no route matches login of user "evil␍␊\\u202e" on host "web-01"',
    )


@pytest.mark.parametrize(
    ("flood", "action", "reason_end"),
    [
        (FloodCount(sent=0), Action.IMMEDIATE, 'on host "web-01"'),
        (FloodCount(sent=2), Action.IMMEDIATE, 'on host "web-01"'),
        (
            FloodCount(sent=3),
            Action.BURST,
            'flood control: 3 login alerts about host "web-01" within 10m',
        ),
        (
            FloodCount(sent=4, burst_sent=True),
            Action.FOLDED,
            'the digest: 4 login alerts about host "web-01" within 10m',
        ),
    ],
)
def test_flood_control_per_recipient(flood: FloodCount, action: Action, reason_end: str) -> None:
    state = PolicyState(hosts={("ops@example.org", "web-01", "login"): flood})
    decisions = {d.recipient: d for d in POLICY.decide(enriched(), state, T0)}
    ops = decisions["ops@example.org"]
    assert (ops.action, ops.sent) == (action, flood.sent)
    assert ops.reason.startswith("route #3 (hosts=web-*,db-[0-9]* kinds=login,failure) matches")
    assert ops.reason.endswith(reason_end)
    assert decisions["sec@example.org"].action is Action.IMMEDIATE  # counted separately


def test_reasons_name_the_route_mode_and_silence() -> None:
    reasons = {
        d.recipient: d.reason
        for d in POLICY.decide(enriched(event(host="db-1", user="dba")), QUIET, T0)
    }
    assert reasons["ops@example.org"] == (
        'route #3 (hosts=web-*,db-[0-9]* kinds=login,failure) matches login of user "dba"'
        ' on host "db-1"; silenced until 2026-11-26T13:00+00:00; maintenance window CHG-42'
    )
    (digest,) = POLICY.decide(enriched(event(host="lab")), QUIET, T0)
    assert digest.reason.endswith("; mode digest")
    assert digest.route == 3


def test_decide_needs_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="naive"):
        POLICY.decide(enriched(), QUIET, T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("silence", "error"),
    [
        ('until = 2026-12-01T18:00:00\nhosts = ["a"]', "until needs a time zone offset"),
        ("until = 2026-12-01T18:00:00Z", "needs at least one of hosts, users, kinds, sources"),
        ('until = 2026-12-01T18:00:00Z\nsources = ["10.0.0.0/33"]', "10.0.0.0/33"),
    ],
)
def test_bad_silences_name_the_key(silence: str, error: str) -> None:
    with pytest.raises(ConfigError, match=r"^<config>: \$\.silence\[0\]: ") as caught:
        parse_config(f"[[silence]]\n{silence}\n")
    assert error in str(caught.value)


# --- flood budgets: per recipient, host and kind, under a fleet cap per kind -------------

FLOODED = FloodCount(sent=3)  # flood_max reached
BURST_SENT = FloodCount(sent=4, burst_sent=True)
LOGIN_DB = {"host": "db-1", "user": "root"}
FAIL_WEB = {**FAIL, "host": "web-1", "user": "root"}


@pytest.mark.parametrize(
    ("fields", "hosts", "fleet", "expected"),
    [
        # The case: failures for root on web-1 used the budget; root logs in on db-1.
        pytest.param(
            LOGIN_DB, {("web-1", "failure"): BURST_SENT}, {"failure": FloodCount(sent=4)},
            ("immediate", None), id="failures-elsewhere-never-fold-a-login",
        ),
        # …and on web-1 itself: the failures' budget is not the logins'.
        pytest.param(
            {"host": "web-1", "user": "root"}, {("web-1", "failure"): BURST_SENT}, {},
            ("immediate", None), id="failures-same-host-never-fold-a-login",
        ),
        # One host's flood of its own logins folds its own, not another host's.
        pytest.param(
            LOGIN_DB, {("web-1", "login"): BURST_SENT}, {"login": FloodCount(sent=4)},
            ("immediate", None), id="one-host-flood-spares-others",
        ),
        pytest.param(
            {"host": "web-1"}, {("web-1", "login"): FLOODED}, {}, ("burst", "host"),
            id="host-budget-burst",
        ),
        pytest.param(
            {"host": "web-1"}, {("web-1", "login"): BURST_SENT}, {}, ("folded", None),
            id="host-budget-folded",
        ),
        pytest.param(
            {"host": "WEB-1"}, {("web-1", "login"): BURST_SENT}, {}, ("folded", None),
            id="host-budget-case-insensitive",
        ),
        pytest.param(
            FAIL_WEB, {("web-1", "failure"): FLOODED}, {}, ("burst", "host"),
            id="failure-budget-burst",
        ),
        # Many hosts flooding (or one relay speaking for many names): the fleet cap.
        pytest.param(
            LOGIN_DB, {}, {"login": FloodCount(sent=8)}, ("burst", "fleet"), id="fleet-burst",
        ),
        pytest.param(
            LOGIN_DB, {}, {"login": FloodCount(sent=9, burst_sent=True)}, ("folded", None),
            id="fleet-folded",
        ),
        pytest.param(
            LOGIN_DB, {}, {"failure": FloodCount(sent=9, burst_sent=True)},
            ("immediate", None), id="fleet-failures-never-fold-a-login",
        ),
        pytest.param(
            LOGIN_DB, {}, {"login": FloodCount(sent=7)}, ("immediate", None),
            id="fleet-below-cap",
        ),
        # A host budget used up decides first, with its own burst mail.
        pytest.param(
            LOGIN_DB, {("db-1", "login"): FLOODED}, {"login": FloodCount(sent=9, burst_sent=True)},
            ("burst", "host"), id="host-burst-before-fleet",
        ),
    ],
)  # fmt: skip
def test_flood_budgets(
    fields: dict[str, object],
    hosts: dict[tuple[str, str], FloodCount],
    fleet: dict[str, FloodCount],
    expected: tuple[str, str | None],
) -> None:
    state = PolicyState(
        hosts={("sec@example.org", host, kind): count for (host, kind), count in hosts.items()},
        fleet={("sec@example.org", kind): count for kind, count in fleet.items()},
    )
    decisions = {d.recipient: d for d in POLICY.decide(enriched(event(**fields)), state, T0)}
    sec = decisions["sec@example.org"]
    assert (sec.action.value, sec.burst.value if sec.burst else None) == expected
    assert all(d.action is Action.IMMEDIATE for r, d in decisions.items() if r != sec.recipient)


def test_burst_reasons_name_the_budget() -> None:
    host = PolicyState(hosts={("sec@example.org", "db-1", "login"): FLOODED})
    (decision, *_) = POLICY.decide(enriched(event(**LOGIN_DB)), host, T0)
    assert decision.reason.endswith('flood control: 3 login alerts about host "db-1" within 10m')
    fleet = PolicyState(fleet={("sec@example.org", "login"): FloodCount(sent=8)})
    (decision, *_) = POLICY.decide(enriched(event(**LOGIN_DB)), fleet, T0)
    assert decision.reason.endswith("flood control: 8 login alerts from all hosts within 10m")


@pytest.mark.parametrize(("flood_max", "fleet"), [(10, 11), (10, 5), (2, 3)])
def test_a_fleet_cap_one_host_can_reach_is_refused(flood_max: int, fleet: int) -> None:
    with pytest.raises(ConfigError, match=r"^<config>: \$\.policy: flood_max_fleet") as caught:
        parse_config(f"[policy]\nflood_max = {flood_max}\nflood_max_fleet = {fleet}\n")
    assert "one host's flood folds every other host's alerts" in str(caught.value)
