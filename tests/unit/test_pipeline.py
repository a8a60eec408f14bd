"""The pipeline's verdicts and the dead queue's descriptions (unit: fake stages, no services)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from consumer.alerts.detecting import Detecting
from consumer.alerts.pipeline import Stages, Verdict, process, process_batch
from consumer.broker.delivery import Delivery
from consumer.broker.retries import republish_headers
from consumer.core.decisions import Action, Decision, PolicyState
from consumer.core.enriched import Enriched, FirstSeen
from consumer.core.identity import Identity
from consumer.core.notice import Notice
from consumer.stages.decode import Decoder, Incoming
from consumer.store import HostReport, Sighting
from schemas import topology
from schemas.config import Config
from schemas.errors import PermanentSendError, StoreError, TransientSendError
from schemas.event import LoginEvent, encode
from tests.support.factories import T0, event
from tests.support.fakes import NoAnswers, NoSilences
from tests.support.worker_helpers import loginwatch


@dataclass
class FakeStore:
    sent: set[str] = field(default_factory=set)
    fail: bool = False
    logged: list[str] = field(default_factory=list)
    hosts: list[HostReport] = field(default_factory=list)

    def batch(
        self,
        sightings: Sequence[Sighting],
        *,
        budgets: object,
        now: datetime,
        window: float,
        hosts: Sequence[HostReport] = (),
        reads: object = (),
    ) -> FakeBatch:
        if self.fail:
            raise StoreError("database is locked")
        self.hosts += hosts
        return FakeBatch(self, [FirstSeen() for _ in sightings])


@dataclass
class FakeBatch:
    """The pipeline's view of the store for one batch (consumer/store/batch.py)."""

    store: FakeStore
    first_seen: list[FirstSeen]

    def flood_state(self, now: datetime, *, host: str, kind: str) -> PolicyState:
        return PolicyState()

    def check(self, now: datetime, *, host: str, kind: str, keys: object) -> None:
        pass

    def was_sent(self, key: str) -> bool:
        return key in self.store.sent

    def record_sent(self, key: str, now: datetime, **_: object) -> None:
        self.store.sent.add(key)

    def log_decisions(self, event_id: str, decisions: object, now: datetime) -> None:
        self.store.logged.append(event_id)

    def flush(self) -> None:
        pass

    read: list[list[tuple[object, ...]]] = field(default_factory=list)


@dataclass
class FakePolicy:
    decisions: tuple[Decision, ...]
    flood_window: float = 600

    def decide(
        self, enriched: Enriched, state: PolicyState, now: datetime, *, silences: object = None
    ) -> tuple[Decision, ...]:
        return self.decisions


@dataclass
class FakeEnrich:
    """Counts the costly step (reverse DNS), which only mailed events may take."""

    named: list[str] = field(default_factory=list)

    def placed(self, login: LoginEvent, now: datetime) -> Enriched:
        return Enriched(event=login)

    def sighting(self, placed: Enriched, now: datetime, *, votes: bool = True) -> Sighting:
        return Sighting(placed.event.user, placed.event.id_hex, now)

    def names(self, enriched: Enriched) -> Enriched:
        self.named.append(enriched.event.id_hex)
        return enriched


@dataclass
class FakeSender:
    failures: dict[str, Exception]
    mails: list[str] = field(default_factory=list)

    def deliver(self, notice: Notice) -> None:
        assert notice.mail is not None
        self.send(notice.mail)

    def send(self, msg: EmailMessage) -> None:
        to = str(msg["To"])
        if to in self.failures:
            raise self.failures[to]
        self.mails.append(to)


class FakeRender:
    def notice(self, enriched: Enriched, decision: Decision, key: str) -> Notice:
        msg = EmailMessage()
        msg["To"] = decision.recipient or ""
        return Notice(key, msg["To"], "loginwatch.alert", "", (), (), {}, mail=msg)


def mail(to: str) -> Decision:
    return Decision(action=Action.IMMEDIATE, reason="route #1", recipient=to)


def stages(
    decisions: tuple[Decision, ...], failures: dict[str, Exception], store: FakeStore
) -> tuple[Stages, FakeSender]:
    sender = FakeSender(failures)
    built = Stages(
        decode=Decoder(Identity()),
        enrich=FakeEnrich(),  # type: ignore[arg-type]
        policy=FakePolicy(decisions),  # type: ignore[arg-type]
        render=FakeRender(),  # type: ignore[arg-type]
        send=sender,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        clock=lambda: T0,
        silences=NoSilences(),  # type: ignore[arg-type]
        answers=NoAnswers(),  # type: ignore[arg-type]
        detecting=Detecting(Config(), None),
    )
    return built, sender


LOGIN: LoginEvent = event()
TRANSIENT = TransientSendError("421 busy")
PERMANENT = PermanentSendError("550 no such user")


@pytest.mark.parametrize(
    ("decisions", "failures", "verdict", "mailed"),
    [
        ((mail("a@x"), mail("b@x")), {}, Verdict.DONE, ["a@x", "b@x"]),
        ((Decision(action=Action.DIGEST, reason="digest", recipient="a@x"),), {}, Verdict.DONE, []),
        ((mail("a@x"),), {"a@x": TRANSIENT}, Verdict.PARK, []),
        ((mail("a@x"),), {"a@x": PERMANENT}, Verdict.DEAD, []),
        # One transient failure parks the event; the other recipient got its mail.
        ((mail("a@x"), mail("b@x")), {"a@x": TRANSIENT}, Verdict.PARK, ["b@x"]),
        # Transient wins over permanent: the retry may still reach the others.
        ((mail("a@x"), mail("b@x")), {"a@x": PERMANENT, "b@x": TRANSIENT}, Verdict.PARK, []),
    ],
)
def test_verdicts(
    decisions: tuple[Decision, ...],
    failures: dict[str, Exception],
    verdict: Verdict,
    mailed: list[str],
) -> None:
    built, sender = stages(decisions, failures, FakeStore())
    outcome = process(built, Incoming(encode(LOGIN), "guest"))
    assert outcome.verdict is verdict
    assert outcome.event_id == LOGIN.id_hex
    assert sender.mails == mailed
    for recipient, exc in failures.items():
        assert f"{recipient}: {exc}" in outcome.reason


@pytest.mark.parametrize(
    ("action", "named"),
    [
        (Action.IMMEDIATE, 1),
        (Action.BURST, 1),
        (Action.DIGEST, 0),
        (Action.FOLDED, 0),
        (Action.SILENCED, 0),
        (Action.IGNORE, 0),
    ],
)
def test_reverse_dns_only_for_events_that_are_mailed(action: Action, named: int) -> None:
    decision = Decision(action=action, reason="r", recipient="a@x")
    built, _ = stages((decision,), {}, FakeStore())
    assert process(built, Incoming(encode(LOGIN), "guest")).verdict is Verdict.DONE
    assert len(built.enrich.named) == named  # type: ignore[attr-defined]


def test_a_redelivered_event_mails_only_whom_it_did_not_reach() -> None:
    store = FakeStore()
    built, sender = stages((mail("a@x"), mail("b@x")), {"a@x": TRANSIENT}, store)
    assert process(built, Incoming(encode(LOGIN), "guest")).verdict is Verdict.PARK
    sender.failures.clear()
    assert process(built, Incoming(encode(LOGIN), "guest")).verdict is Verdict.DONE
    assert sender.mails == ["b@x", "a@x"]


def test_a_failing_store_parks_and_poison_is_dead() -> None:
    built, _ = stages((mail("a@x"),), {}, FakeStore(fail=True))
    parked = process(built, Incoming(encode(LOGIN), "guest"))
    assert (parked.verdict, parked.reason) == (Verdict.PARK, "store: database is locked")
    dead = process(built, Incoming(b"\x00"))
    assert dead.verdict is Verdict.DEAD
    assert dead.reason.startswith("undecodable event: ")


def test_republished_copies_carry_the_host_user_and_none_of_its_headers() -> None:
    delivery = Delivery(
        tag=1,
        body=b"",
        routing_key="login",
        redelivered=False,
        user_id="host-web1",
        headers={"x-death": [{"queue": "q"}], "x-first-death-queue": "q", "keep": 1},
    )
    headers = republish_headers(delivery, "central", **{topology.HEADER_ATTEMPT: 2})
    assert headers == {topology.HEADER_USER_ID: "host-web1", topology.HEADER_ATTEMPT: 2}


def test_dead_list_describes_broker_dead_lettered_messages() -> None:
    from consumer.broker.deadletters import describe

    when = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    delivery = Delivery(
        tag=1,
        body=encode(LOGIN),
        routing_key="login",
        redelivered=False,
        user_id="guest",  # one of our copies (parked), then the delivery limit
        headers={
            "x-death": [{"queue": "loginwatch.alerts", "reason": "delivery_limit", "time": when}]
        },
    )
    described = describe(delivery, "guest")
    assert (described.id, described.host, described.user) == (LOGIN.id_hex, "web-01", "alice")
    assert described.reason == "broker: delivery_limit in loginwatch.alerts"
    assert (described.dead_at, described.origin) == (when, "loginwatch.alerts")


def test_check_config_refuses_a_secret_others_can_read(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.pass"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    config = tmp_path / "loginwatch.toml"
    config.write_text(f'[smtp]\npassword_file = "{secret}"\n')
    result = loginwatch("check-config", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"loginwatch check-config: $.smtp.password_file: {secret} is readable by group or others"
        " (mode 0644); chmod 600 it"
    )
    secret.chmod(0o600)
    result = loginwatch("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"secrets {secret} (mode ok)" in result.stdout


@dataclass
class RefusesBatches(FakeStore):
    """A store that refuses any batch holding the event ``bad`` (a value it cannot take)."""

    bad: str = ""

    def batch(
        self,
        sightings: Sequence[Sighting],
        *,
        budgets: object,
        now: datetime,
        window: float,
        hosts: Sequence[HostReport] = (),
        reads: object = (),
    ) -> FakeBatch:
        if any(s.event_id == self.bad for s in sightings):
            raise StoreError("value out of range")
        return super().batch(sightings, budgets=budgets, now=now, window=window, hosts=hosts)


def test_a_batch_the_store_refuses_is_taken_one_event_at_a_time() -> None:
    logins = [event(tty=f"pts/{n}") for n in range(4)]
    store = RefusesBatches(bad=logins[1].id_hex)
    built, sender = stages((mail("a@x"),), {}, store)
    settled = process_batch(built, [Incoming(encode(e), "guest") for e in logins])
    assert [s.verdict for s in settled] == [Verdict.DONE, Verdict.PARK, Verdict.DONE, Verdict.DONE]
    assert settled[1].reason == "store: value out of range"
    assert len(sender.mails) == 3


def test_every_event_of_a_batch_reports_its_host_and_version() -> None:
    # The store's hosts table (loginwatch status) hears of each event's host and hook version,
    # in the batch's first write, whatever the policy decides.
    logins = [event(host="web-1", hook_version="0.1.0"), event(host="db-2", hook_version="0.2.0")]
    store = FakeStore()
    built, _ = stages((), {}, store)
    process_batch(built, [Incoming(encode(e), "guest") for e in logins])
    assert [(r.name, r.version) for r in store.hosts] == [("web-1", "0.1.0"), ("db-2", "0.2.0")]
    assert {r.at for r in store.hosts} == {T0}
