"""System alerts: which routes hear of them, with what budget, and what the mail shows."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta
from email.message import EmailMessage

import jsonschema
import msgspec
import pytest

from consumer.channels import webhook
from consumer.core.decisions import Action, FloodCount, PolicyState
from consumer.core.system import (
    HOST_FLOODING,
    HOST_QUIET,
    LOGIN_DROPPED,
    SystemAlert,
    dropped_alert,
    flooding_alert,
    quiet_alert,
    sent_key,
)
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from schemas.config import parse_config
from schemas.event import DroppedEvent, Outcome, PamType
from tests.support.factories import T0, event

ROUTES = """
[policy]
flood_max = 2
[[route]]
to = ["ops@example.org"]
kinds = ["login"]
[[route]]
to = ["dba@example.org"]
hosts = ["db-*"]
mode = "digest"
[[route]]
to = ["night@example.org"]
mode = "ignore"
"""


def flooding(host: str = "web-1") -> SystemAlert:
    return flooding_alert(f"host-{host}", host, now=T0, budget=100, window=60.0, refused=90,
                          folded=10, reasons=("undecodable event: x",))  # fmt: skip


def decide(
    config: str, alert: SystemAlert, state: PolicyState | None = None
) -> list[tuple[str | None, Action]]:
    decisions = Policy(parse_config(config)).decide_system(alert, state or PolicyState(), T0)
    return [(d.recipient, d.action) for d in decisions]


def test_by_default_every_immediate_route_hears_of_it_whatever_its_globs() -> None:
    # ops@ routes logins only, and still hears of a flood; digest and ignore routes do not.
    assert decide(ROUTES, flooding()) == [("ops@example.org", Action.IMMEDIATE)]


def test_a_route_that_names_the_kind_takes_it_over_with_its_globs_and_mode() -> None:
    named = ROUTES + '[[route]]\nto = ["noc@example.org"]\nkinds = ["host-*"]\nhosts = ["web-*"]\n'
    assert decide(named, flooding()) == [("noc@example.org", Action.IMMEDIATE)]
    assert decide(named, flooding("db-1")) == [(None, Action.IGNORE)]  # not for this host
    digest = ROUTES + '[[route]]\nto = ["noc@example.org"]\nkinds = ["login-dropped"]\n'
    digest += 'mode = "digest"\n'
    alert = dropped_alert(event(dropped=3))
    assert alert is not None
    assert decide(digest, alert) == [("noc@example.org", Action.DIGEST)]


def test_no_route_at_all_is_one_ignore() -> None:
    [only] = Policy(parse_config("")).decide_system(flooding(), PolicyState(), T0)
    assert only.action is Action.IGNORE and "no route for host-flooding" in only.reason


def test_its_own_flood_budget_bursts_then_folds() -> None:
    key = ("ops@example.org", "web-1", HOST_FLOODING)
    spent = PolicyState(hosts={key: FloodCount(sent=2)})
    assert decide(ROUTES, flooding(), spent) == [("ops@example.org", Action.BURST)]
    burst = PolicyState(hosts={key: FloodCount(sent=3, burst_sent=True)})
    assert decide(ROUTES, flooding(), burst) == [("ops@example.org", Action.FOLDED)]
    # The logins' budget is another: spent, it does not fold a system alert.
    logins = PolicyState(hosts={("ops@example.org", "web-1", "login"): FloodCount(sent=9)})
    assert decide(ROUTES, flooding(), logins) == [("ops@example.org", Action.IMMEDIATE)]


def test_a_silence_that_names_its_kind_or_host_silences_it() -> None:
    until = (T0 + timedelta(hours=1)).isoformat()
    by_kind = ROUTES + f'[[silence]]\nuntil = {until}\nkinds = ["host-flooding"]\n'
    assert decide(by_kind, flooding()) == [("ops@example.org", Action.SILENCED)]
    by_user = ROUTES + f'[[silence]]\nuntil = {until}\nhosts = ["web-*"]\nusers = ["bob"]\n'
    assert decide(by_user, flooding()) == [("ops@example.org", Action.IMMEDIATE)]


def test_a_drop_raises_it_once_per_event_and_recipient() -> None:
    assert dropped_alert(event()) is None
    alert = dropped_alert(event(dropped=3, hook_version="0.1.0"))
    assert alert is not None
    assert (alert.kind, alert.host, alert.dropped) == (LOGIN_DROPPED, "web-01", 3)
    again = dropped_alert(event(dropped=3, hook_version="0.1.0"))
    assert again is not None and sent_key(again, "OPS@example.org") == sent_key(
        alert, "ops@example.org"
    )


def test_a_hook_that_says_what_it_dropped_raises_it_for_logins_only() -> None:
    login = DroppedEvent(time=T0, pam_type=PamType.OPEN_SESSION, outcome=Outcome.SUCCESS,
                         user="root\x1b[2J", remote="203.0.113.9")  # fmt: skip
    failed = DroppedEvent(time=T0, pam_type=PamType.AUTH, outcome=Outcome.FAILURE, user="x")
    assert dropped_alert(event(dropped=5, dropped_logins=0, dropped_list=(failed,))) is None
    alert = dropped_alert(event(dropped=5, dropped_logins=1, dropped_list=(login, failed)))
    assert alert is not None and alert.dropped_logins == 1
    [decision] = Policy(parse_config('[[route]]\nto = ["ops@example.org"]')).decide_system(
        alert, PolicyState(), T0
    )
    msg = round_trip(RENDERER.render_system(alert, decision))
    assert str(msg["Subject"]) == "web-01 dropped 1 login before reporting: logins are missing"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "1 login among them; the host listed these:" in text
    assert "login of root␛[2J from 203.0.113.9" in text  # the escape shown, not obeyed
    assert "failure of x" in text
    bare = dropped_alert(event(dropped=5))  # an older hook: it says nothing more
    assert bare is not None and bare.dropped_logins is None


def test_one_flooding_mail_per_speaker_an_hour_whichever_worker_noticed() -> None:
    first = flooding()
    later = flooding_alert("host-web-1", "web-1", now=T0 + timedelta(minutes=20), budget=1,
                           window=1.0, refused=1, folded=0, reasons=())  # fmt: skip
    assert sent_key(first, "ops@example.org") == sent_key(later, "ops@example.org")


RENDERER = Renderer(parse_config('[smtp]\nfrom = "loginwatch@example.org"'))
HOSTILE = "evil\r\nBcc: x@example.org <script>{{ 7*7 }}\u202e=?utf-8?b?QQ==?="


def round_trip(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("kind", [HOST_FLOODING, LOGIN_DROPPED, HOST_QUIET])
def test_hostile_text_in_a_system_alert_stays_inert(kind: str) -> None:
    if kind == HOST_FLOODING:
        alert = flooding_alert(HOSTILE, HOSTILE, now=T0, budget=100, window=60.0, refused=1,
                               folded=0, reasons=(HOSTILE,))  # fmt: skip
    elif kind == HOST_QUIET:  # a host's name and its goodbye's reason are its own choice
        alert = quiet_alert(HOSTILE, T0 - timedelta(hours=2), stopped=True, why=HOSTILE, now=T0)
    else:
        dropped = dropped_alert(event(dropped=2, hook_version=HOSTILE[:60]))
        assert dropped is not None
        alert = msgspec.structs.replace(dropped, host=HOSTILE)
    [decision] = Policy(parse_config('[[route]]\nto = ["ops@example.org"]')).decide_system(
        alert, PolicyState(), T0
    )
    msg = round_trip(RENDERER.render_system(alert, decision))
    assert [k for k in msg if k.startswith("X-")] == [
        "X-Loginwatch-System", "X-Loginwatch-Action",
    ]  # fmt: skip
    assert msg["X-Loginwatch-System"] == kind and msg["Bcc"] is None
    assert "\n" not in msg["Subject"] and "=?" not in str(msg["Subject"])
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "evil␍␊Bcc" in text and "\\u202e" in text
    assert "{{ 7*7 }}" in text  # shown, never evaluated
    assert "<script>" not in html and "&lt;script&gt;" in html
    for bad in (b"\r\nBcc:", "\u202e".encode()):
        assert bad not in msg.as_bytes()


def test_the_flooding_mail_says_what_happens_and_what_to_do() -> None:
    [decision] = Policy(parse_config('[[route]]\nto = ["ops@example.org"]')).decide_system(
        flooding(), PolicyState(), T0
    )
    msg = round_trip(RENDERER.render_system(flooding(), decision))
    assert str(msg["Subject"]).startswith("Host web-1 is flooding loginwatch")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for said in ("The broker user host-web-1, which speaks for host web-1", "more than\n100",
                 "90 refused, 10 folded", "Its logins are still decided, each one",
                 "undecodable event: x", "loginwatch host remove web-1"):  # fmt: skip
        assert said in text, said


def test_a_receiver_gets_the_system_alert_as_the_shipped_schema_says() -> None:
    """A receiver's notice carries no mail; a webhook's body is ``loginwatch.system``."""
    alert = flooding_alert(HOSTILE, HOSTILE, now=T0, budget=100, window=60.0, refused=90,
                           folded=10, reasons=(HOSTILE,))  # fmt: skip
    config = '[[route]]\nto = ["receiver:hooks"]\n[receiver.hooks]\nkind = "webhook"\n'
    config += 'url = "https://hooks.example.org/lw"\nsecret_file = "/etc/loginwatch/hooks"\n'
    [decision] = Policy(parse_config(config)).decide_system(alert, PolicyState(), T0)
    notice = RENDERER.system_notice(alert, decision, sent_key(alert, "receiver:hooks"))
    assert notice.mail is None and notice.type == "loginwatch.system"
    assert notice.target == "receiver:hooks" and notice.priority == "high"
    shown = {f.label: f.value for f in notice.fields}
    assert "\r" not in shown["Host"] and "\\u202e" in shown["Host"]  # made visible
    schema = webhook.schema()
    body = json.loads(webhook.body(notice))
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
    assert body["data"]["system"]["host"] == HOSTILE  # as the host sent it, for a machine
    body["data"]["system"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, schema)
