"""The silence matcher (consumer/silences/rules.py): pure, one table of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumer.silences.rules import Rule, covers, first_match, from_config, literal, problem
from consumer.silences.table import SilenceRefused, SilenceTable
from consumer.store import open_store
from consumer.store.actions import SILENCES_PER_CREATOR
from schemas.config import Silence
from tests.support.factories import KEY_SHA256, event

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FP = event(key_sha256=KEY_SHA256).fingerprint
OTHER_FP = "SHA256:" + "B" * 43


def rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"id": "s1", "starts": T0 - timedelta(hours=1),
                            "ends": T0 + timedelta(hours=1)}  # fmt: skip
    return Rule(**{**base, **fields})


LOGIN = event(host="DB-1", user="deploy", client_ip="192.0.2.10", key_sha256=KEY_SHA256)
CASES = [
    ("host glob, case-insensitive", rule(hosts=("db-*",)), "ops@x.org", True),
    ("host glob that does not match", rule(hosts=("web-*",)), "ops@x.org", False),
    ("user glob", rule(users=("dep*",)), "ops@x.org", True),
    ("user globs are case-sensitive", rule(users=("DEPLOY",)), "ops@x.org", False),
    ("kind", rule(kinds=("login",)), "ops@x.org", True),
    ("another kind", rule(kinds=("failure",)), "ops@x.org", False),
    ("source network", rule(sources=("192.0.2.0/24",)), "ops@x.org", True),
    ("another network", rule(sources=("198.51.100.0/24",)), "ops@x.org", False),
    ("the key's fingerprint", rule(fingerprints=(FP,)), "ops@x.org", True),
    ("another key", rule(fingerprints=(OTHER_FP,)), "ops@x.org", False),
    ("all matchers must match", rule(hosts=("db-*",), users=("root",)), "ops@x.org", False),
    ("limited to a recipient (case-insensitive)", rule(hosts=("db-*",), to=("OPS@x.org",)),
     "ops@x.org", True),
    ("limited to someone else", rule(hosts=("db-*",), to=("dba@x.org",)), "ops@x.org", False),
    ("not started yet", rule(hosts=("db-*",), starts=T0 + timedelta(minutes=1)), "ops@x.org",
     False),
    ("ended", rule(hosts=("db-*",), ends=T0), "ops@x.org", False),
    ("expired early", rule(hosts=("db-*",), expired_at=T0 - timedelta(seconds=1)), "ops@x.org",
     False),
    ("expired after now", rule(hosts=("db-*",), expired_at=T0 + timedelta(minutes=5)),
     "ops@x.org", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "silence", "recipient", "silenced"), CASES, ids=[c[0] for c in CASES]
)
def test_the_matcher(case: str, silence: Rule, recipient: str, silenced: bool) -> None:
    assert covers(silence, LOGIN, recipient, T0) is silenced


def test_an_event_without_a_key_matches_no_fingerprint_list() -> None:
    keyless = event(key_sha256=b"", auth_method="password")
    assert not covers(rule(fingerprints=(FP,)), keyless, "ops@x.org", T0)


def test_an_ack_is_literal_a_glob_in_a_hostile_host_name_matches_only_itself() -> None:
    ack = rule(hosts=(literal("db-*"),), users=(literal("[a]?"),))
    assert covers(ack, event(host="db-*", user="[a]?"), "ops@x.org", T0)
    assert not covers(ack, event(host="db-1", user="[a]?"), "ops@x.org", T0)
    assert not covers(ack, event(host="db-*", user="ab"), "ops@x.org", T0)


def test_first_match_and_config_silences() -> None:
    configured = from_config(0, Silence(until=T0 + timedelta(hours=1), hosts=("db-*",),
                                        comment="CHG-1"))  # fmt: skip
    assert configured.id == "config:1" and configured.origin == "config"
    stored = rule(id="s2", users=("deploy",))
    assert first_match([stored, configured], LOGIN, "ops@x.org", T0) is stored
    assert first_match([configured, stored], LOGIN, "ops@x.org", T0) is configured
    assert first_match([], LOGIN, "ops@x.org", T0) is None


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (rule(), "at least one of"),
        (rule(sources=("not-a-net",)), "is no network"),
        (rule(hosts=("x",), ends=T0 - timedelta(hours=2)), "after its start"),
    ],
)
def test_what_cannot_be_stored_says_why(bad: Rule, said: str) -> None:
    assert said in (problem(bad) or "")


def test_the_table_refuses_a_config_silence_an_unknown_id_and_past_the_cap(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "store.db")) as store:
        table = SilenceTable(store.db)
        with pytest.raises(SilenceRefused, match=r"config file: remove it there"):
            table.expire("config:1", "oscar", T0)
        with pytest.raises(SilenceRefused, match=r"no silence 'nope'"):
            table.expire("nope", "oscar", T0)
        made = table.add(rule(hosts=("db-*",), created_by="oscar", created_at=T0))
        assert [r.id for r in table.open(T0)] == [made.id]
        assert table.expire(made.id, "petra", T0).expired_by == "petra"
        assert table.open(T0) == []
        with pytest.raises(SilenceRefused, match="ended already"):
            table.expire(made.id, "petra", T0)
        for _ in range(SILENCES_PER_CREATOR):
            table.add(rule(users=("x",), created_by="flood", created_at=T0))
        with pytest.raises(SilenceRefused, match="500 open silences already"):
            table.add(rule(users=("x",), created_by="flood", created_at=T0))
