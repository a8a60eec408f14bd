"""What the worker does per speaker around a batch: a real policy, store (SQLite) and
renderer, a fake outbox; no broker (the flood test runs all of it for real)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from consumer.alerts.pipeline import Settlement, Stages, Verdict
from consumer.alerts.speakers import UNKNOWN, Speakers, speaker_of
from consumer.broker.delivery import Delivery
from consumer.core.identity import Identity
from consumer.stages.decode import Decoder
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import open_store
from schemas import topology
from schemas.config import parse_config
from schemas.event import Outcome, PamType, encode
from tests.support.factories import T0, books, event
from tests.support.fakes import Outbox

CONFIG = """
[worker]
speaker_budget = 3
dead_per_speaker = 1
[enrich]
dns = false
[[route]]
to = ["sec@example.org"]
users = ["root"]
[[route]]
to = ["ops@example.org"]
mode = "digest"
"""
USER = "host-web-1"


@pytest.fixture
def stages(tmp_path: Path) -> Stages:
    config = parse_config(CONFIG + f'[store]\nurl = "{tmp_path / "store.db"}"\n')
    store = open_store(config.store.url)
    return Stages(decode=Decoder(Identity.from_config(config)),
                  enrich=Enricher(config.enrich, store), policy=Policy(config),
                  render=Renderer(config), send=Outbox(), store=store,
                  clock=lambda: T0, **books(store, config))  # fmt: skip


def delivery(body: bytes, user: str | None = USER, key: str = "host-web-1.event") -> Delivery:
    return Delivery(1, body, key, redelivered=False, user_id=user)


def test_a_flooding_hosts_logins_are_decided_quietly_unless_they_mail(stages: Stages) -> None:
    speakers = Speakers(parse_config(CONFIG), own_user="central")
    junk = [delivery(b"\xc1junk %d" % n) for n in range(5)]
    messages = speakers.messages(stages, junk)
    settled = speakers.shed(stages, messages, T0)
    # Three spend the budget, one more goes dead (dead_per_speaker), the last is shed.
    assert [s is None for s in settled] == [True, True, True, True, False]
    assert speakers.shedder.flooding() == [USER]

    alice, root = event(host="web-1", user="alice"), event(host="web-1", user="root")
    failed = event(host="web-1", pam_type=PamType.AUTH, outcome=Outcome.FAILURE)
    batch = [delivery(encode(e)) for e in (alice, root, failed)]
    quiet, loud, shed = speakers.shed(stages, speakers.messages(stages, batch), T0)
    assert quiet == Settlement(Verdict.DONE, f"decided while {USER} floods: digest",
                               alice.id_hex, folded=False)  # fmt: skip
    assert loud is None  # root's login mails sec@: the pipeline takes it
    assert shed is not None and shed.reason == f"shed: failed login counted while {USER} floods"
    speakers.write(stages, T0)
    assert stages.store.failures("192.0.2.10", T0 - timedelta(minutes=1), host="web-1") == 1


def test_the_central_user_and_other_hosts_go_on_as_always(stages: Stages) -> None:
    speakers = Speakers(parse_config(CONFIG), own_user="central")
    for n in range(5):
        speakers.shed(stages, speakers.messages(stages, [delivery(b"\xc1%d" % n)]), T0)
    others = [delivery(encode(event(host="db-1")), user="host-db-1", key="host-db-1.event"),
              delivery(b"\xc1", user="central", key="login")]  # fmt: skip
    assert speakers.shed(stages, speakers.messages(stages, others), T0) == [None, None]


@pytest.mark.parametrize(
    ("user", "headers", "key", "speaker"),
    [
        ("host-a", {}, "host-a.event", "host-a"),
        # Our copy of a host's message (parked, replayed): the user it had on arrival.
        ("central", {topology.HEADER_USER_ID: "host-a"}, "loginwatch.alerts", "host-a"),
        ("central", {}, "login", "central"),
        # No user_id: the routing key's user, which its topic permission vouches for.
        (None, {}, "host-a.event", "host-a"),
        (None, {}, "login", UNKNOWN),
    ],
)
def test_the_speaker_is_whom_the_broker_vouches_for(
    user: str | None, headers: dict[str, str], key: str, speaker: str
) -> None:
    message = Delivery(1, b"", key, redelivered=False, user_id=user, headers=headers)
    assert speaker_of(message, "central") == speaker


def test_a_login_after_shed_failures_is_never_decided_quietly(stages: Stages) -> None:
    """A flooding host's failed passwords are shed but counted per source; a login from
    that source then goes through the pipeline, which reads the counts (never folded)."""
    from consumer.alerts import pipeline
    from consumer.stages.decode import Incoming

    speakers = Speakers(parse_config(CONFIG), own_user="central")
    for n in range(5):
        speakers.shed(stages, speakers.messages(stages, [delivery(b"\xc1%d" % n)]), T0)
    failures = [delivery(encode(event(host="web-1", pam_type=PamType.AUTH, client_port=n,
                                      outcome=Outcome.FAILURE, client_ip="203.0.113.9")))
                for n in range(6)]  # fmt: skip
    shed = speakers.shed(stages, speakers.messages(stages, failures), T0)
    assert all(s is not None and s.reason.startswith("shed: failed login") for s in shed)
    # alice's login only reaches the digest: quietly decided, were it not for the failures.
    alice = event(host="web-1", user="alice", client_ip="203.0.113.9", client_port=99)
    messages = speakers.messages(stages, [delivery(encode(alice))])
    assert speakers.shed(stages, messages, T0) == [None]  # the pipeline takes it
    speakers.before(stages, messages, T0)  # the shed failures reach the store first
    assert stages.store.failures("203.0.113.9", T0 - timedelta(minutes=1), host="web-1") == 6
    root = event(host="web-1", user="root", client_ip="203.0.113.9", client_port=98)
    [settled] = pipeline.process_batch(stages, [Incoming(encode(root), USER)])
    assert settled.verdict is Verdict.DONE
    [mail] = stages.send.sent  # type: ignore[attr-defined]
    assert str(mail["Subject"]).startswith("AFTER BRUTE FORCE: Login root@web-1")
