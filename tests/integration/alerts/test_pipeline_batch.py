"""A batch of events is decided exactly as one event at a time would be (SQLite and PostgreSQL).

The pipeline thread hands the deliveries that wait to ``process_batch`` together: their
first-seen writes and flood reads go to the store in one round trip, and each event is then
decided in order (consumer/store/batch.py). These tests run the same events through
``process_batch`` on one store and through ``process`` one by one on another, and compare
what a user would see: the mails (who, about which event, alert or burst), the settlements,
and what the store kept (first-seen rows, flood budgets, the decision and sent logs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from consumer.alerts.pipeline import Settlement, Stages, Verdict, process, process_batch
from consumer.core.identity import Identity
from consumer.core.notice import Notice
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Store, open_store
from consumer.store.backends import Row, Statement
from schemas.config import Config, EnrichConfig, parse_config
from schemas.errors import TransientSendError
from schemas.event import LoginEvent, Outcome, PamType, encode
from tests.support.factories import T0, books, event

FLOOD_MAX = 3
CONFIG = f"""
[policy]
flood_max = {FLOOD_MAX}
flood_window = "10m"
flood_max_fleet = 8

[[route]]
to = ["ops@example.org"]
kinds = ["login", "failure"]

[[route]]
to = ["ops@example.org"]
mode = "digest"
"""
FAIL = {"pam_type": PamType.AUTH, "outcome": Outcome.FAILURE}
TABLES = {
    "first_seen": "username, scope, value, event_id, logins",
    "first_seen_host": "username, scope, value, host, event_id, novel, logins, votes",
    "flood_budget": "kind, scope, host, recipient, slot, sent, burst",
    "decision_log": "event_id, recipient, action, reason",
    "delivery_log": "key",
}


@dataclass
class Outbox:
    """The SMTP server's side: what was accepted, and what to refuse (transiently) next."""

    mails: list[tuple[str, str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    on_send: Callable[[], None] = lambda: None

    def deliver(self, notice: Notice) -> None:
        assert notice.mail is not None
        self.send(notice.mail)

    def send(self, msg: EmailMessage) -> None:
        self.on_send()
        subject = str(msg["Subject"])
        event_id = str(msg["Message-ID"])
        if any(bad in event_id for bad in self.refuse):
            raise TransientSendError("421 try again later")
        self.mails.append((str(msg["To"]), subject))

    def close(self) -> None:
        pass


def stages_on(store: Store, config: Config, outbox: Outbox) -> Stages:
    return Stages(
        decode=Decoder(Identity()),
        enrich=Enricher(EnrichConfig(dns=False), store),
        policy=Policy(config),
        render=Renderer(config),
        send=outbox,
        store=store,
        clock=lambda: T0 + timedelta(seconds=30),
        # Read once: the round trips below are the batch's; the silences and answers cost
        # one more read each per [worker] silence_interval, whatever the batches.
        **books(store, config, monotonic=lambda: 0.0),
    )


@pytest.fixture
def two_stores(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Store, Store]]:
    """Two empty stores on the same backend: one for batches, one for one at a time."""
    if store_url.startswith("postgresql://"):
        new_url: Callable[[], str] = request.getfixturevalue("pg_urls")
        other = new_url()
    else:
        other = str(tmp_path / "one" / "loginwatch.db")
    with open_store(store_url) as batched, open_store(other) as single:
        yield batched, single


def incoming(login: LoginEvent) -> Incoming:
    return Incoming(encode(login), f"host-{login.host}")


def contents(store: Store) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(store.db.execute(f"SELECT {columns} FROM {table}"))
        for table, columns in TABLES.items()
    }


def both_ways(
    stores: tuple[Store, Store], logins: list[LoginEvent], size: int = 16
) -> tuple[list[Settlement], Outbox, list[Settlement], Outbox]:
    """``logins`` through batches of ``size`` on the first store, one by one on the second."""
    config = parse_config(CONFIG)
    batched, single = Outbox(), Outbox()
    in_batches = stages_on(stores[0], config, batched)
    one_by_one = stages_on(stores[1], config, single)
    settled = [
        s
        for start in range(0, len(logins), size)
        for s in process_batch(in_batches, [incoming(e) for e in logins[start : start + size]])
    ]
    alone = [process(one_by_one, incoming(e)) for e in logins]
    return settled, batched, alone, single


def test_two_logins_from_one_new_address_in_one_batch(two_stores: tuple[Store, Store]) -> None:
    first = event(tty="pts/1")
    second = event(tty="pts/2")  # same user, host and address: another login
    failed = event(client_ip="203.0.113.9", rhost="203.0.113.9", **FAIL)
    then = event(client_ip="203.0.113.9", rhost="203.0.113.9", tty="pts/3")
    settled, batched, alone, single = both_ways(two_stores, [first, second, failed, then])

    assert settled == alone
    assert batched.mails == single.mails
    subjects = [subject for _, subject in batched.mails]
    # Only the first login from 192.0.2.10 is new; the failed password from 203.0.113.9
    # says no NEW SOURCE (every brute-force source is new) and did not make the later
    # login from there look familiar.
    assert ["new source" in s.lower() for s in subjects] == [True, False, False, True]
    assert contents(two_stores[0]) == contents(two_stores[1])


def test_flood_max_reached_within_a_batch(two_stores: tuple[Store, Store]) -> None:
    logins = [event(tty=f"pts/{n}", user="bob") for n in range(FLOOD_MAX + 4)]
    settled, batched, alone, single = both_ways(two_stores, logins)

    assert settled == alone
    assert batched.mails == single.mails
    # flood_max alerts, then one burst mail; the rest folds into the digest.
    assert len(batched.mails) == FLOOD_MAX + 1
    assert "flood" in batched.mails[-1][1].lower()
    folded = two_stores[0].db.execute("SELECT COUNT(*) FROM decision_log WHERE action = 'folded'")
    assert folded == [(3,)]
    assert contents(two_stores[0]) == contents(two_stores[1])


def test_a_mixed_stream_decides_the_same_in_batches(two_stores: tuple[Store, Store]) -> None:
    """Users, hosts, sources, failed passwords, a duplicate inside one batch, floods."""
    logins = []
    for n in range(60):
        fields: dict[str, object] = {
            "user": f"u{n % 4}",
            "host": f"web-{n % 3:02d}",
            "client_ip": f"192.0.2.{n % 7}",
            "tty": f"pts/{n}",
        }
        if n % 5 == 0:
            fields |= FAIL
        logins.append(event(**fields))
    logins.insert(9, logins[8])  # the broker handed one event twice, in one batch
    settled, batched, alone, single = both_ways(two_stores, logins, size=10)

    assert settled == alone
    assert batched.mails == single.mails
    assert len(batched.mails) < len(logins)  # floods folded some
    assert contents(two_stores[0]) == contents(two_stores[1])


def test_a_parked_mail_is_sent_once_when_its_batch_comes_back(
    two_stores: tuple[Store, Store],
) -> None:
    """A crash or a transient failure mid-batch: the batch comes back whole, and only the
    mails that did not go out are sent (the sent log, first-seen idempotent per event)."""
    store = two_stores[0]
    outbox = Outbox()
    built = stages_on(store, parse_config(CONFIG), outbox)
    logins = [event(tty=f"pts/{n}", user=f"u{n}", host=f"web-{n}") for n in range(4)]
    outbox.refuse = {logins[2].id_hex}
    first = process_batch(built, [incoming(e) for e in logins])
    assert [s.verdict for s in first] == [Verdict.DONE, Verdict.DONE, Verdict.PARK, Verdict.DONE]
    assert len(outbox.mails) == 3

    outbox.refuse.clear()
    again = process_batch(built, [incoming(e) for e in logins])
    assert [s.verdict for s in again] == [Verdict.DONE] * 4
    assert len(outbox.mails) == 4
    # Each was its user's first login from that address, the redelivery too.
    assert all("new source" in subject.lower() for _, subject in outbox.mails)


def test_mails_another_worker_sent_during_the_batch_count(two_stores: tuple[Store, Store]) -> None:
    """The batch read the flood budgets before its first mail; another worker sends
    flood_max mails meanwhile (written to the same database outside the batch). The next
    mailing event is decided on the counts read just before its mail: a burst, not an alert."""
    store = two_stores[0]
    outbox = Outbox()
    built = stages_on(store, parse_config(CONFIG), outbox)
    now = built.clock()

    def other_worker() -> None:
        if len(outbox.mails) == 0:
            for _ in range(FLOOD_MAX):
                store.note_mail("ops@example.org", "web-01", "login", now)

    outbox.on_send = other_worker
    logins = [event(tty=f"pts/{n}", user="carol") for n in range(3)]
    process_batch(built, [incoming(e) for e in logins])
    subjects = [subject.lower() for _, subject in outbox.mails]
    assert len(subjects) == 2
    assert "flood" not in subjects[0]
    assert "flood" in subjects[1]  # the burst mail: the other worker's mails counted


@dataclass
class Counting:
    """Counts the round trips a store's database is asked for (a batch is one)."""

    trips: int = 0

    def wrap(self, store: Store) -> None:
        real_batch, real_execute = store.db.batch, store.db.execute

        def batch(statements: Sequence[Statement]) -> list[list[Row]]:
            self.trips += 1
            return real_batch(statements)

        def execute(sql: str, params: Sequence[object] = ()) -> list[Row]:
            self.trips += 1
            return real_execute(sql, params)

        store.db.batch = batch  # type: ignore[method-assign]
        store.db.execute = execute  # type: ignore[method-assign]


def test_round_trips_of_a_batch(two_stores: tuple[Store, Store]) -> None:
    """Digest-only events cost one round trip per batch; a mail costs two (check-before,
    record-after); folded events only their share of the last (the decision log)."""
    store = two_stores[0]
    config = parse_config(CONFIG.replace('kinds = ["login", "failure"]', 'kinds = ["failure"]'))
    built = stages_on(store, config, Outbox())
    built.silences.rules(T0), built.answers.flags(T0)  # read before counting
    counting = Counting()
    counting.wrap(store)
    quiet = [event(tty=f"pts/{n}", user=f"u{n}", client_ip=f"192.0.2.{n}") for n in range(16)]
    assert {s.verdict for s in process_batch(built, [incoming(e) for e in quiet])} == {Verdict.DONE}
    assert counting.trips == 1

    outbox = Outbox()
    built = stages_on(store, parse_config(CONFIG), outbox)
    built.silences.rules(T0), built.answers.flags(T0)
    counting.trips = 0
    flood = [event(tty=f"f{n}", user="dave", host="db-01") for n in range(FLOOD_MAX + 5)]
    process_batch(built, [incoming(e) for e in flood])
    assert len(outbox.mails) == FLOOD_MAX + 1
    assert counting.trips == 1 + 2 * (FLOOD_MAX + 1) + 1
