"""Route precedence (consumer/core/routing.py), as the worker's policy and the digest both read it:
the recipients an event's digest lists are those the policy did not ignore."""

from __future__ import annotations

import pytest

from consumer.core.decisions import Action, PolicyState
from consumer.core.routing import audience, digest_recipients, first_routes
from consumer.stages.policy import Policy
from schemas.config import parse_config
from schemas.event import LoginEvent
from tests.support.factories import T0, enriched, event

CONFIG = """
[[route]]
to = ["Ops@example.org"]
users = ["ci-*"]
mode = "ignore"

[[route]]
to = ["sec@example.org"]
users = ["root"]

[[route]]
to = ["ops@example.org", "SEC@example.org"]
hosts = ["WEB-*"]

[[route]]
to = ["ops@example.org", "quiet@example.org"]
mode = "digest"

[[route]]
to = ["nobody@example.org"]
mode = "ignore"
"""
ROUTES = parse_config(CONFIG).route
POLICY = Policy(parse_config(CONFIG))


@pytest.mark.parametrize(
    ("login", "first", "listed"),
    [
        (
            event(user="ci-build", host="web-1"),
            {"ops": 0, "sec": 2, "quiet": 3, "nobody": 4},
            "quiet sec",
        ),
        (
            event(user="root", host="db-1"),
            {"sec": 1, "ops": 3, "quiet": 3, "nobody": 4},
            "ops quiet sec",
        ),
        (
            event(user="alice", host="Web-2"),
            {"ops": 2, "sec": 2, "quiet": 3, "nobody": 4},
            "ops quiet sec",
        ),
        (event(user="alice", host="db-1"), {"ops": 3, "quiet": 3, "nobody": 4}, "ops quiet"),
    ],
)
def test_each_recipient_is_decided_by_its_first_matching_route(
    login: LoginEvent, first: dict[str, int], listed: str
) -> None:
    chosen = first_routes(ROUTES, login)
    assert {r.split("@")[0]: index for r, (index, _) in chosen.items()} == first
    assert " ".join(r.split("@")[0] for r in audience(ROUTES, login)) == listed
    decided = POLICY.decide(enriched(login), PolicyState(), T0)
    assert (
        sorted(
            d.recipient.split("@")[0]
            for d in decided
            if d.recipient and d.action is not Action.IGNORE
        )
        == listed.split()
    )


def test_everyone_a_non_ignore_route_names_gets_a_digest() -> None:
    assert digest_recipients(ROUTES) == ("ops@example.org", "quiet@example.org", "sec@example.org")
