"""Enrichment against a real (local) DNS server, a real .mmdb file and a real store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.core.addresses import canonical_address, network_of
from consumer.core.enriched import FirstSeen
from consumer.lookups.geoip import GeoIp
from consumer.lookups.rdns import ReverseDns
from consumer.stages.enrich import Enricher
from consumer.store import Store, open_store
from schemas.config import EnrichConfig
from schemas.errors import ConfigError
from schemas.event import Outcome, PamType
from tests.support.dns_server import DnsServer
from tests.support.factories import T0, event
from tests.support.mmdb import city, write_mmdb

PTR = {
    "192.0.2.10": "laptop.example.net",
    "192.0.2.11": "spoofed.example.com",  # its forward name does not point back
    "2001:db8::5": "v6.example.net",
    "203.0.113.7": "evil\\013\\010bcc.<script>.example",
}
FORWARD = {
    "laptop.example.net": ["192.0.2.10"],
    "spoofed.example.com": ["198.51.100.1"],
    "v6.example.net": ["2001:db8::5"],
}


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(ptr=PTR, forward=FORWARD, silent={"192.0.2.99"}) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(str(tmp_path / "lw.db")) as opened:
        yield opened


@pytest.fixture(scope="module")
def geoip_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    write_mmdb(
        path,
        {
            "192.0.2.0/24": city("DE", "Germany", "Berlin"),
            "2001:db8::/32": city("FR", "France"),
        },
    )
    return str(path)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.10", ("laptop.example.net", True)),
        ("192.0.2.11", ("spoofed.example.com", False)),
        ("2001:db8::5", ("v6.example.net", True)),
        ("203.0.113.7", (None, False)),  # not a host name: not shown at all
        ("198.51.100.77", (None, False)),
        ("not an address", (None, False)),
    ],
)
def test_reverse_dns_is_verified_only_when_forward_confirmed(
    dns_server: DnsServer, address: str, expected: tuple[str | None, bool]
) -> None:
    assert ReverseDns(dns_server.resolver(), timeout=2).lookup(address) == expected


def test_reverse_dns_timeout_is_bounded_and_cached(dns_server: DnsServer) -> None:
    rdns = ReverseDns(dns_server.resolver(), timeout=0.2)
    before = len(dns_server.queries)
    assert rdns.lookup("192.0.2.99") == (None, False)
    asked = len(dns_server.queries) - before
    assert rdns.lookup("192.0.2.99") == (None, False)
    assert len(dns_server.queries) - before == asked  # the second answer came from the cache


def test_cache_expires_and_is_bounded(dns_server: DnsServer) -> None:
    now = [0.0]
    rdns = ReverseDns(
        dns_server.resolver(), timeout=2, cache_size=1, cache_ttl=10, clock=lambda: now[0]
    )
    rdns.lookup("192.0.2.10")
    rdns.lookup("192.0.2.11")  # evicts .10
    before = len(dns_server.queries)
    rdns.lookup("192.0.2.11")
    assert len(dns_server.queries) == before
    now[0] = 11.0
    rdns.lookup("192.0.2.11")
    assert len(dns_server.queries) > before


def test_enriched_login(dns_server: DnsServer, store: Store, geoip_db: str) -> None:
    enricher = Enricher(EnrichConfig(geoip_db=geoip_db), store, resolver=dns_server.resolver())
    got = enricher(event(), T0)
    assert (got.rdns, got.rdns_verified) == ("laptop.example.net", True)
    assert (got.country, got.country_name, got.city) == ("DE", "Germany", "Berlin")
    assert got.network == "192.0.2.0/24"
    # The key is new too: alice never logged in with it before.
    assert got.first_seen == FirstSeen(address=True, network=True, country=True, key=True)
    again = enricher(event(client_port=50023), T0)
    assert again.first_seen == FirstSeen()
    v6 = enricher(event(client_ip="2001:db8::5"), T0)
    assert (v6.country, v6.city, v6.network) == ("FR", None, "2001:db8::/64")
    assert v6.first_seen == FirstSeen(address=True, network=True, country=True)
    other_key = enricher(event(client_port=50024, key_sha256=b"\x01" * 32), T0)
    assert other_key.first_seen == FirstSeen(key=True)  # the office address, a new key
    enricher.close()


def test_failed_logins_are_neither_marked_nor_recorded(store: Store) -> None:
    """Every brute-force source is new: a failure says no NEW SOURCE (the digest counts
    new failure sources), and never makes a later login from there look familiar."""
    enricher = Enricher(EnrichConfig(dns=False), store)
    failure = {"pam_type": PamType.AUTH, "outcome": Outcome.FAILURE, "client_ip": "198.51.100.9"}
    assert enricher(event(**failure), T0).first_seen == FirstSeen()
    assert enricher(event(**failure, client_port=1), T0).first_seen == FirstSeen()
    assert enricher(event(client_ip="198.51.100.9"), T0).first_seen.address


def test_without_dns_geoip_or_address(store: Store) -> None:
    got = Enricher(EnrichConfig(dns=False), store)(event(client_ip="", rhost="tty1"), T0)
    # No address to compare: only the key is asked about (and new).
    assert (got.rdns, got.country, got.network, got.first_seen) == (
        None,
        None,
        None,
        FirstSeen(key=True),
    )


def test_a_missing_geoip_database_is_a_config_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\$\.enrich\.geoip_db: cannot open"):
        Enricher(EnrichConfig(geoip_db=str(tmp_path / "missing.mmdb")), store)


@pytest.mark.parametrize(
    ("text", "address", "network"),
    [
        ("192.0.2.10", "192.0.2.10", "192.0.2.0/24"),
        ("::ffff:192.0.2.10", "192.0.2.10", "192.0.2.0/24"),
        ("2001:DB8::1", "2001:db8::1", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::1", "fe80::/64"),
    ],
)
def test_addresses_and_networks(text: str, address: str, network: str) -> None:
    assert canonical_address(text) == address
    assert network_of(address) == network


# --- one time bound per address, negative caching, hostile PTR names ----------------------

DEAD = "dead.example"  # a zone whose servers never answer


def test_ptr_and_forward_share_one_deadline() -> None:
    """A PTR answered late, then a forward zone that never answers: one bound in all."""
    with DnsServer(
        ptr={"198.51.100.1": f"h.{DEAD}"}, delay={"198.51.100.1": 0.7}, silent_zones={DEAD}
    ) as server:
        rdns = ReverseDns(server.resolver(), timeout=1.0)
        started = time.monotonic()
        assert rdns.lookup("198.51.100.1") == (f"h.{DEAD}", False)
        elapsed = time.monotonic() - started
        assert server.asked("A") == [f"h.{DEAD}."]  # the forward query was made…
    assert elapsed < 1.35  # …within what was left of the one bound (the old code: 1.7 s)


def test_many_ptr_names_share_the_deadline_and_are_capped() -> None:
    names = [f"n{i:02}.{DEAD}" for i in range(30)]
    with DnsServer(ptr={"198.51.100.2": names}, silent_zones={DEAD}) as server:
        rdns = ReverseDns(server.resolver(), timeout=0.5)
        assert rdns.lookup("198.51.100.2") == ("n00.dead.example", False)
        # The first forward query used up the bound: no query per name after it.
        assert server.asked("A") == ["n00.dead.example."]


def test_any_ptr_name_may_confirm_but_only_the_first_few_are_asked() -> None:
    wrong = [f"a{i}.example.net" for i in range(3)]
    with DnsServer(
        ptr={"198.51.100.3": [*wrong, "z.example.net"], "198.51.100.4": [*wrong, "b.x", "z.x"]},
        forward={"z.example.net": ["198.51.100.3"], "z.x": ["198.51.100.4"]},
    ) as server:
        rdns = ReverseDns(server.resolver(), timeout=2)
        assert rdns.lookup("198.51.100.3") == ("z.example.net", True)
        assert rdns.lookup("198.51.100.4") == ("a0.example.net", False)  # z.x is the 5th
        assert "z.x." not in server.asked("A")
        assert len(server.asked("A")) == 4 + 4


def test_a_burst_of_never_answering_addresses_costs_one_bound_each_once() -> None:
    """Ten strangers in ten /24s whose names' zone never answers; then they come back,
    with neighbours: nothing more is asked."""
    addresses = [f"198.51.{n}.7" for n in range(10)]
    with DnsServer(ptr={a: f"x{i}.{DEAD}" for i, a in enumerate(addresses)},
                   silent_zones={DEAD}) as server:  # fmt: skip
        rdns = ReverseDns(server.resolver(), timeout=0.2)
        for address in addresses:
            assert rdns.lookup(address) == (f"x{addresses.index(address)}.{DEAD}", False)
        asked = list(server.queries)
        assert len(set(asked)) == 20  # one PTR and one A per address
        for address in addresses:
            rdns.lookup(address)
            rdns.lookup(address.replace(".7", ".8"))  # the same /24: its servers are slow
        assert server.queries == asked


@pytest.mark.parametrize(
    ("addresses", "ptr_queries"),
    [
        # A reverse zone that never answers: one timeout per /24, per /64.
        ([f"203.0.113.{n}" for n in range(10)], 1),
        ([f"2001:db8:0:1::{n:x}" for n in range(10)], 1),
        # NXDOMAIN: per address for IPv4 (a neighbour may have a name)…
        ([f"192.0.2.{n}" for n in range(100, 110)], 10),
        # …per /64 for IPv6, where one owner holds 2^64 addresses.
        ([f"2001:db8:0:2::{n:x}" for n in range(10)], 1),
        # SERVFAIL is the servers' failure, like a timeout.
        ([f"192.0.2.{n}" for n in range(200, 210)], 1),
    ],
    ids=["v4-timeout", "v6-timeout", "v4-nxdomain", "v6-nxdomain", "v4-servfail"],
)
def test_negative_answers_are_cached(addresses: list[str], ptr_queries: int) -> None:
    with DnsServer(
        silent={"203.0.113.0/24", "2001:db8:0:1::/64"},
        servfail={f"192.0.2.{n}" for n in range(200, 210)},
    ) as server:
        rdns = ReverseDns(server.resolver(), timeout=0.2)
        for _ in range(2):
            for address in addresses:
                assert rdns.lookup(address) == (None, False)
        assert len(set(server.asked("PTR"))) == ptr_queries


def test_negative_answers_expire_sooner_than_names() -> None:
    now = [0.0]
    with DnsServer(ptr=PTR, forward=FORWARD) as server:
        rdns = ReverseDns(
            server.resolver(), timeout=2, cache_ttl=3600, negative_ttl=60, clock=lambda: now[0]
        )
        rdns.lookup("192.0.2.10")
        rdns.lookup("192.0.2.77")  # NXDOMAIN
        now[0] = 61.0
        before = len(server.queries)
        rdns.lookup("192.0.2.10")
        assert len(server.queries) == before
        rdns.lookup("192.0.2.77")
        assert len(server.queries) == before + 1


@pytest.mark.parametrize(
    "ptr",
    [
        "evil\\013\\010bcc.example",  # control characters
        "<script>.example",
        "under_score.example",
        "sp\\032ace.example",
        "caf\\195\\169.example",  # raw UTF-8 bytes
        "10.0.0.1",  # reads as another address
        "a." * 32 + "example",  # 33 labels
        "-lead.example",
        "trail-.example",
        "x.=?utf-8?b?DQpCY2M6IHhAeQ==?=",  # an encoded word
    ],
)
def test_hostile_ptr_names_are_not_shown(ptr: str) -> None:
    with DnsServer(ptr={"198.51.100.9": ptr}, forward={ptr: ["198.51.100.9"]}) as server:
        assert ReverseDns(server.resolver(), timeout=2).lookup("198.51.100.9") == (None, False)


@pytest.mark.parametrize(
    ("ptr", "shown"),
    [
        ("xn--80ak6aa92e.com.", "xn--80ak6aa92e.com"),  # an IDN stays in its ASCII form
        ("MiXeD.Example.NET", "mixed.example.net"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        ("a." * 31 + "example", "a." * 31 + "example"),
    ],
)
def test_host_names_are_shown_lower_case_and_never_decoded(ptr: str, shown: str) -> None:
    with DnsServer(ptr={"198.51.100.9": ptr}) as server:
        assert ReverseDns(server.resolver(), timeout=2).lookup("198.51.100.9") == (shown, False)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (city("DE", "Germany", "Berlin"), ("DE", "Germany", "Berlin")),
        (city("D\r\nE", "Germany", "Berlin\r\nBcc: x@y"), (None, "Germany", None)),
        (city("de", "G" * 101, "Zürich"), (None, None, "Zürich")),
        (city("FR", "France\u202e", "=?utf-8?b?DQo=?="), ("FR", None, "=?utf-8?b?DQo=?=")),
    ],
    ids=["plain", "crlf", "long-lower", "bidi"],
)
def test_geoip_text_is_bounded(
    tmp_path: Path, record: dict[str, object], expected: tuple[str | None, ...]
) -> None:
    path = tmp_path / "hostile.mmdb"
    write_mmdb(path, {"192.0.2.0/24": record})
    geoip = GeoIp(str(path))
    assert tuple(geoip.lookup("192.0.2.1"))[:3] == expected
    geoip.close()


def test_answers_near_the_deadline_mark_the_network() -> None:
    """A /64 whose server answers each address just before the bound would cost one bound
    per address: an answer that took more than half of it marks the network too."""
    first, second = "2001:db8:0:3::1", "2001:db8:0:3::2"
    with DnsServer(
        ptr={first: "slow.example.net", second: "slow2.example.net"},
        delay={first: 0.6, second: 0.6},
    ) as server:
        rdns = ReverseDns(server.resolver(), timeout=1.0)
        assert rdns.lookup(first) == ("slow.example.net", False)  # still shown
        assert rdns.lookup(first) == ("slow.example.net", False)  # from the cache
        assert rdns.lookup(second) == (None, False)
        assert len(server.asked("PTR")) == 1
