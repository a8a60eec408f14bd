"""The policy and routing with the detections: services in routes and silences, a login
after a brute force never folded, escalation_only routes, and quiet hosts as a table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from consumer.core.decisions import Decision, FloodCount, PolicyState
from consumer.core.detections import Brute, Escalation, HostState, Origin
from consumer.detect.escalation import login_of_end
from consumer.detect.quiet import quiet, to_alert
from consumer.stages.policy import Policy
from schemas.config import parse_config
from schemas.event import LoginEvent, PamType
from tests.support.factories import T0, enriched, event
from tests.support.worker_helpers import loginwatch

CONFIG = """
[[route]]
to = ["ssh@x.example"]
services = ["sshd"]

[[route]]
to = ["sec@x.example"]
kinds = ["sudo", "su"]
escalation_only = true

[[silence]]
until = 2099-01-01T00:00:00Z
services = ["su"]
to = ["sec@x.example"]
"""
POLICY = Policy(parse_config(CONFIG))
SUDO = event(service="sudo", user="root", ruser="alice", client_ip="", rhost="")
SU = event(service="su", user="root", ruser="alice", client_ip="", rhost="")
ROOT = Escalation(target="root", via="sudo")


def actions(decisions: tuple[Decision, ...]) -> dict[str | None, str]:
    return {d.recipient: d.action.value for d in decisions}


@pytest.mark.parametrize(
    ("login", "escalation", "expected"),
    [
        (event(), None, {"ssh@x.example": "immediate"}),  # sshd: the ssh route only
        (SUDO, ROOT, {"sec@x.example": "immediate"}),  # a sudo to root: at once
        (SUDO, Escalation(target="postgres", via="sudo"), {"sec@x.example": "digest"}),
        (SUDO, None, {"sec@x.example": "digest"}),  # no escalation found: the digest
        (SU, Escalation(target="root", via="su"), {"sec@x.example": "silenced"}),  # by service
        (event(pam_type=PamType.CLOSE_SESSION, service="sudo"), None, {}),  # sudo-end: no route
    ],
)
def test_services_and_escalation_only(
    login: LoginEvent, escalation: Escalation | None, expected: dict[str | None, str]
) -> None:
    decisions = POLICY.decide(enriched(login, escalation=escalation), PolicyState(), T0)
    assert actions(decisions) == (expected or {None: "ignore"})


def test_a_login_after_a_brute_force_is_never_folded() -> None:
    spent = FloodCount(sent=50, burst_sent=True)
    state = PolicyState(hosts={("ssh@x.example", "web-01", "login"): spent},
                        fleet={("ssh@x.example", "login"): spent})  # fmt: skip
    plain = POLICY.decide(enriched(event()), state, T0)
    assert actions(plain) == {"ssh@x.example": "folded"}
    brute = Brute(host=37, fleet=37, window=600)
    after = POLICY.decide(enriched(event(), brute=brute), state, T0)
    assert actions(after) == {"ssh@x.example": "immediate"}
    assert after[0].reason.endswith("never folded: login after 37 failed passwords from this"
                                     " address in the last 10 minutes")  # fmt: skip


def state(name: str, hours: float, *, bye: bool = False, retired: bool = False,
          alerted: bool = False) -> HostState:  # fmt: skip
    at = T0 - timedelta(hours=hours)
    return HostState(name=name, last_report=at, goodbye_at=at if bye else None,
                     goodbye_why="stop" if bye else "", retired=retired,
                     alerted=alerted)  # fmt: skip


@pytest.mark.parametrize(
    ("hosts", "quiet_names", "alerts"),
    [
        ([state("web-1", 1)], [], []),  # within quiet_after
        ([state("web-1", 3)], ["web-1 gone"], ["web-1"]),
        ([state("web-1", 3, bye=True)], ["web-1 stopped"], ["web-1"]),
        ([state("web-1", 3, retired=True)], [], []),
        ([state("web-1", 3, alerted=True)], ["web-1 gone"], []),  # one alert per silence
        ([state("b", 3), state("a", 5)], ["a gone", "b gone"], ["a", "b"]),  # oldest first
    ],
)
def test_quiet_hosts(hosts: list[HostState], quiet_names: list[str], alerts: list[str]) -> None:
    assert [f"{q.name} {q.how}" for q in quiet(hosts, T0, 7200)] == quiet_names
    assert [q.name for q in to_alert(hosts, T0, 7200)] == alerts


def login(host: str, seconds: float, source: str = "192.0.2.10") -> Origin:
    return Origin(event_id=f"{host}{seconds}", user="alice", host=host, service="sshd",
                  source=source, fingerprint="", at=T0 + timedelta(seconds=seconds),
                  linked_by="")  # fmt: skip


@pytest.mark.parametrize(
    ("candidates", "source", "expected"),
    [
        ([login("web-1", 1)], "192.0.2.10", "web-11"),
        ([login("web-1", 1)], "", "web-11"),  # a console line names no address
        ([login("web-1", 5)], "192.0.2.10", None),  # too far from when the record began
        ([login("web-2", 0)], "192.0.2.10", None),  # another host
        ([login("web-1", 0, "198.51.100.1")], "192.0.2.10", None),  # another address
        ([login("web-1", -2), login("web-1", 0.5)], "192.0.2.10", "web-10.5"),  # the nearest
    ],
)
def test_login_of_end(candidates: list[Origin], source: str, expected: str | None) -> None:
    found = login_of_end(candidates, host="web-1", source=source, began=T0, slack=3)
    assert (found.event_id if found else None) == expected


def test_a_logout_prefers_the_login_of_its_sshd_process() -> None:
    """By-user rows come once per link; the one whose sshd process is wtmp's pid wins."""
    by_time = msgspec.structs.replace(login("web-1", 0.2), linked_by="event:x")
    by_pid = msgspec.structs.replace(login("web-1", 0.9), linked_by="pid:700:3")
    found = login_of_end([by_time, by_pid], host="web-1", source="", began=T0, slack=3, pid=700)
    assert found is by_pid
    assert login_of_end([by_time, by_pid], host="web-1", source="", began=T0, slack=3) is by_time


def test_check_config_names_the_catch_all_routes_sudo_would_reach(tmp_path: Path) -> None:
    config = tmp_path / "loginwatch.toml"
    config.write_text(CONFIG + '\n[[route]]\nto = ["all@x.example"]\n'
                      '\n[[route]]\nto = ["d@x.example"]\nmode = "digest"\n')  # fmt: skip
    result = loginwatch("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "su, sudo" in line]
    assert notes == ["  note    route #3 (immediate, no kinds, no services) also mails every su,"
                     " sudo and console session of hosts installed with --services: give it"
                     " kinds or services"]  # fmt: skip
