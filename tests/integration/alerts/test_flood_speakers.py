"""The fleet flood budget cannot hide a real login that a host's own broker user reported.

A relay (``[worker.host_users]``), the central user or a handful of compromised hosts can
send 55 fake logins under invented host names; before, that spent the fleet budget and the
next real login on any host, reported by that host itself, was folded into the digest.
Real pipeline stages on a real SQLite store, no network.
"""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from consumer.alerts.pipeline import Stages, Verdict, process
from consumer.core.identity import Identity
from consumer.core.notice import Notice
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import open_store
from schemas.config import parse_config
from schemas.event import LoginEvent, Outcome, PamType, encode
from tests.support.factories import T0, books, event

CONFIG = parse_config(
    """
[smtp]
from = "loginwatch@example.org"

[enrich]
dns = false

[worker.host_users]
relay-dc1 = ["*.dc1.example.org"]

[[route]]
to = ["ops@example.org"]
"""
)


class Outbox:
    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []

    def deliver(self, notice: Notice) -> None:
        assert notice.mail is not None
        self.send(notice.mail)

    def send(self, msg: EmailMessage) -> None:
        self.mails.append(msg)

    def close(self) -> None:
        pass

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.mails]


def stages(tmp_path: Path) -> tuple[Stages, Outbox]:
    store = open_store(str(tmp_path / "store" / "loginwatch.db"))
    outbox = Outbox()
    built = Stages(
        decode=Decoder(Identity.from_config(CONFIG)),
        enrich=Enricher(CONFIG.enrich, store),
        policy=Policy(CONFIG),
        render=Renderer(CONFIG),
        send=outbox,
        store=store,
        clock=lambda: T0,
        **books(store, CONFIG),
    )
    return built, outbox


def fake(host: str, n: int, **fields: object) -> bytes:
    return encode(event(host=host, user=f"u{n}", time=T0 + timedelta(seconds=n), **fields))


def failure(host: str, n: int) -> LoginEvent:
    return event(host=host, user=f"f{n}", pam_type=PamType.AUTH, outcome=Outcome.FAILURE,
                 client_ip=f"203.0.113.{n % 250}", time=T0 + timedelta(seconds=n))  # fmt: skip


def test_a_relay_flood_under_invented_names_cannot_fold_a_hosts_own_login(
    tmp_path: Path,
) -> None:
    pipeline, outbox = stages(tmp_path)
    for n in range(80):
        process(pipeline, Incoming(fake(f"fake-{n}.dc1.example.org", n), "relay-dc1"))
    # The relay's own flood is still bounded: 55 alerts, then one fleet burst, then folded.
    assert len(outbox.mails) == 56
    assert outbox.subjects()[-1].startswith("Flood control")
    real = event(host="db-1", user="root", client_ip="198.51.100.23")
    assert process(pipeline, Incoming(encode(real), "host-db-1")).verdict is Verdict.DONE
    assert len(outbox.mails) == 57
    assert "root@db-1" in outbox.subjects()[-1]
    # The same login, reported by the relay or the central user, is one more of the flood.
    process(pipeline, Incoming(fake("db-2.dc1.example.org", 99), "relay-dc1"))
    process(pipeline, Incoming(fake("db-3", 98), "guest"))
    assert len(outbox.mails) == 57
    pipeline.close()


def test_five_flooding_hosts_cannot_fold_a_sixth_hosts_login(tmp_path: Path) -> None:
    pipeline, outbox = stages(tmp_path)
    for host in ("web-1", "web-2", "web-3", "web-4", "web-5"):
        for n in range(20):
            process(pipeline, Incoming(fake(host, n), f"host-{host}"))
    assert len(outbox.mails) == 5 * 11  # each host: 10 alerts and its own burst mail
    process(pipeline, Incoming(encode(event(host="db-1", user="root")), "host-db-1"))
    assert "root@db-1" in outbox.subjects()[-1] and len(outbox.mails) == 56
    # Its host's own budget still folds a host's flood of its own logins.
    process(pipeline, Incoming(fake("web-1", 50), "host-web-1"))
    assert len(outbox.mails) == 56
    pipeline.close()


def test_failures_still_stop_at_the_fleet_cap(tmp_path: Path) -> None:
    """A fleet-wide brute force stays at 55 + 1 failure mails (the noise bound), whoever
    reports it: only logins are exempt from the fleet budget."""
    pipeline, outbox = stages(tmp_path)
    for n in range(100):
        host = f"web-{n % 10}"
        process(pipeline, Incoming(encode(failure(host, n)), f"host-{host}"))
    assert len(outbox.mails) == 56
    assert outbox.subjects()[-1].startswith("Flood control")
    pipeline.close()


def test_a_relay_cannot_vote_a_source_familiar_on_other_hosts(tmp_path: Path) -> None:
    """First-seen's fleet vote (2 other hosts) counts reports a relay cannot multiply: one relay
    inventing two host names no longer makes the attacker's address familiar on db-1."""
    pipeline, outbox = stages(tmp_path)
    source = {"user": "root", "client_ip": "203.0.113.66"}
    for n, host in enumerate(("a.dc1.example.org", "b.dc1.example.org")):
        relayed = event(host=host, time=T0 + timedelta(seconds=n), **source)
        process(pipeline, Incoming(encode(relayed), "relay-dc1"))
    assert all(s.startswith("NEW SOURCE: ") for s in outbox.subjects())
    # The relay's own hosts know the address now; the vote for others was not the relay's.
    process(pipeline, Incoming(encode(event(host="a.dc1.example.org", tty="2", **source)),
                               "relay-dc1"))  # fmt: skip
    assert outbox.subjects()[-1].startswith("Login root@a.dc1")
    real = event(host="db-1", time=T0 + timedelta(seconds=5), **source)
    process(pipeline, Incoming(encode(real), "host-db-1"))
    assert outbox.subjects()[-1] == "NEW SOURCE: Login root@db-1 from 203.0.113.66"
    # Two hosts that report for themselves still vote (first_seen_hosts = 2).
    for host in ("web-1", "web-2"):
        process(pipeline, Incoming(encode(event(host=host, **source)), f"host-{host}"))
    process(pipeline, Incoming(encode(event(host="db-2", **source)), "host-db-2"))
    assert outbox.subjects()[-1] == "Login root@db-2 from 203.0.113.66"
    pipeline.close()


def test_reports_that_are_no_votes_count_only_for_their_host(store_url: str) -> None:
    """The store rule behind the relay case, on both backends."""
    with open_store(store_url) as store:

        def new_on(host: str, n: int, *, votes: bool = True) -> bool:
            return store.observe(
                "root",
                address="203.0.113.66",
                network=None,
                country=None,
                event_id=f"e{n}",
                now=T0,
                host=host,
                votes=votes,
            ).address

        assert new_on("a.dc1", 1, votes=False) and new_on("b.dc1", 2, votes=False)
        assert not new_on("a.dc1", 3, votes=False)  # its own host knows it now
        assert new_on("db-1", 4)  # two relay rows are no votes
        assert new_on("web-1", 5)  # db-1 is one vote
        assert not new_on("db-2", 6)  # db-1 and web-1 are two
