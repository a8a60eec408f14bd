"""One stranger cannot stall alerting: the worker's pipeline against a DNS server of our own
that never answers (real Enricher, Policy, Renderer and SQLite store; a fake SMTP sender).

Counts the queries the DNS server saw rather than timing, except for the one bound itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from consumer.alerts.pipeline import Stages, Verdict, process
from consumer.core.identity import Identity
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import open_store
from schemas.config import parse_config
from schemas.event import LoginEvent, Outcome, PamType, encode
from tests.support.dns_server import DnsServer
from tests.support.factories import T0, books, event
from tests.support.fakes import Outbox
from tests.support.smtp_server import text_part

DEAD = "dead.example"  # the strangers' names live in a zone whose servers never answer
CONFIG = parse_config(
    """
[smtp]
from = "loginwatch@example.org"

[enrich]
dns_timeout = 0.3

[policy]
flood_max = 2
flood_max_fleet = 4

[[route]]                 # failed passwords on web hosts: the digest only
to = ["ops@example.org"]
hosts = ["web-*"]
kinds = ["failure"]
mode = "digest"

[[route]]                 # everything else at once
to = ["ops@example.org"]
"""
)
# Ten strangers, each in a /24 of its own, whose PTR names' forward zone never answers.
STRANGERS = [f"198.51.{n}.66" for n in range(10)]
PTR: dict[str, str | list[str]] = {a: f"s{i}.{DEAD}" for i, a in enumerate(STRANGERS)}
PTR["192.0.2.10"] = "laptop.example.net"
FORWARD = {"laptop.example.net": ["192.0.2.10"]}


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(ptr=PTR, forward=FORWARD, silent_zones={DEAD}) as server:
        yield server


@pytest.fixture
def worker(dns_server: DnsServer, tmp_path: Path) -> Iterator[tuple[Stages, Outbox]]:
    store = open_store(str(tmp_path / "lw.db"))
    outbox = Outbox()
    stages = Stages(
        decode=Decoder(Identity()),
        enrich=Enricher(CONFIG.enrich, store, resolver=dns_server.resolver()),
        policy=Policy(CONFIG),
        render=Renderer(CONFIG),
        send=outbox,
        store=store,
        clock=lambda: T0,
        **books(store, CONFIG),
    )
    yield stages, outbox
    stages.close()


def failure(address: str, host: str, n: int) -> LoginEvent:
    return event(
        host=host,
        user=f"admin{n}",
        client_ip=address,
        pam_type=PamType.AUTH,
        outcome=Outcome.FAILURE,
        time=T0 + timedelta(seconds=n),
    )


def test_ignored_and_digested_events_cost_no_lookup(
    dns_server: DnsServer, worker: tuple[Stages, Outbox]
) -> None:
    stages, outbox = worker
    for n, address in enumerate(STRANGERS):
        assert process(stages, Incoming(encode(failure(address, "web-1", n)), "guest")).verdict is (
            Verdict.DONE
        )
    assert dns_server.queries == []  # ten digest-only failures: not one DNS query
    assert outbox.sent == []
    assert process(stages, Incoming(encode(event(host="web-1")), "guest")).verdict is Verdict.DONE
    (mail,) = outbox.sent
    assert "Name       laptop.example.net (verified" in text_part(mail)


def test_a_burst_of_strangers_costs_one_bound_each_then_folds_without_lookups(
    dns_server: DnsServer, worker: tuple[Stages, Outbox]
) -> None:
    """Failed passwords on db-1 mail at once: two alerts and a burst mail look their
    sources up (one bound each); the seven folded after them ask nothing."""
    stages, outbox = worker
    for n, address in enumerate(STRANGERS):
        process(stages, Incoming(encode(failure(address, "db-1", n)), "guest"))
    assert len(outbox.sent) == 3
    assert sorted(set(dns_server.asked("PTR"))) == sorted(
        f"{'.'.join(reversed(a.split('.')))}.in-addr.arpa." for a in STRANGERS[:3]
    )
    assert len(set(dns_server.asked("A"))) == 3
    # The same strangers again, after the window: each is answered from the cache.
    asked = len(dns_server.queries)
    later = T0 + timedelta(hours=1)
    stages = Stages(**{**stages.__dict__, "clock": lambda: later})
    for n, address in enumerate(STRANGERS[:2]):
        process(stages, Incoming(encode(failure(address, "db-1", 100 + n)), "guest"))
    assert len(outbox.sent) == 5
    assert len(dns_server.queries) == asked


def test_one_event_costs_at_most_one_bound(tmp_path: Path) -> None:
    """A PTR answered late plus a forward zone that never answers: the worker spends the one
    [enrich] dns_timeout (1 s) on the event, not a timeout per query (the old code: 1.8 s)."""
    late = "198.51.100.99"
    config = msgspec.structs.replace(
        CONFIG, enrich=msgspec.structs.replace(CONFIG.enrich, dns_timeout=1.0)
    )
    with DnsServer(ptr={late: f"late.{DEAD}"}, delay={late: 0.8}, silent_zones={DEAD}) as server:
        store = open_store(str(tmp_path / "lw.db"))
        outbox = Outbox()
        stages = Stages(
            decode=Decoder(Identity()),
            enrich=Enricher(config.enrich, store, resolver=server.resolver()),
            policy=Policy(config),
            render=Renderer(config),
            send=outbox,
            store=store,
            clock=lambda: T0,
            **books(store, config),
        )
        started = time.monotonic()
        assert (
            process(stages, Incoming(encode(event(client_ip=late)), "guest")).verdict
            is Verdict.DONE
        )
        elapsed = time.monotonic() - started
        stages.close()
        assert server.asked("A") == [f"late.{DEAD}."]
    assert len(outbox.sent) == 1
    assert elapsed < 1.0 + 0.4
