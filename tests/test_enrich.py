"""Enrichment against a real (local) DNS server, a real .mmdb file and a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.model import FirstSeen
from consumer.stages.enrich import Enricher, canonical_address, network_of
from consumer.stages.rdns import ReverseDns
from consumer.store import Store, open_store
from schemas.config import EnrichConfig
from schemas.errors import ConfigError
from schemas.event import Outcome, PamType
from tests.dns_server import DnsServer
from tests.factories import T0, event
from tests.mmdb import city, write_mmdb

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
        ("203.0.113.7", ("evil\\013\\010bcc.<script>.example", False)),
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
    assert got.first_seen == FirstSeen(address=True, network=True, country=True)
    again = enricher(event(client_port=50023), T0)
    assert again.first_seen == FirstSeen()
    v6 = enricher(event(client_ip="2001:db8::5"), T0)
    assert (v6.country, v6.city, v6.network) == ("FR", None, "2001:db8::/64")
    assert v6.first_seen == FirstSeen(address=True, network=True, country=True)
    enricher.close()


def test_failed_logins_are_compared_but_not_recorded(store: Store) -> None:
    enricher = Enricher(EnrichConfig(dns=False), store)
    failure = {"pam_type": PamType.AUTH, "outcome": Outcome.FAILURE, "client_ip": "198.51.100.9"}
    assert enricher(event(**failure), T0).first_seen.address
    assert enricher(event(**failure, client_port=1), T0).first_seen.address
    assert enricher(event(client_ip="198.51.100.9"), T0).first_seen.address


def test_without_dns_geoip_or_address(store: Store) -> None:
    got = Enricher(EnrichConfig(dns=False), store)(event(client_ip="", rhost="tty1"), T0)
    assert (got.rdns, got.country, got.network, got.first_seen) == (None, None, None, FirstSeen())


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
