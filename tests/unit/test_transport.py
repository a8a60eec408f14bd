"""schemas/transport.py: the one transport rule, for every kind of peer."""

from __future__ import annotations

import pytest

from consumer.store.backends import tls_options
from schemas import transport


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("postgresql://lw@db.example/lw", [("db.example", 5432)]),
        ("postgresql://lw@db1:5433,db2/lw", [("db1", 5433), ("db2", 5432)]),
        ("postgresql://lw@[2001:db8::1]:6432/lw", [("2001:db8::1", 6432)]),
        ("postgresql:///lw", [("", 5432)]),
        ("postgresql:///lw?host=/run/postgresql", [("/run/postgresql", 5432)]),
        ("postgresql://lw@localhost/lw?host=db.example&port=6000", [("db.example", 6000)]),
    ],
)
def test_the_hosts_of_a_libpq_url(url: str, hosts: list[tuple[str, int]]) -> None:
    assert transport.postgres_hosts(url) == hosts


@pytest.mark.parametrize(
    ("url", "ca_file", "allowed"),
    [
        ("postgresql://lw@db.example/lw", None, False),
        ("postgresql://lw@db.example/lw?sslmode=require", None, False),
        ("postgresql://lw@db.example/lw?sslmode=disable", "/ca.pem", False),
        ("postgresql://lw@db.example/lw?sslmode=verify-full", None, True),
        ("postgresql://lw@db.example/lw?sslmode=verify-ca", None, True),
        ("postgresql://lw@db.example/lw", "/ca.pem", True),  # ca_file: verify-full
        ("postgresql://lw@127.0.0.1/lw", None, True),
        ("postgresql://lw@[::1]/lw", None, True),
        ("postgresql:///lw", None, True),
        ("postgresql:///lw?host=/run/postgresql", None, True),
        ("postgresql://lw@localhost,db.example/lw", None, False),  # one remote is enough
        ("postgresql://lw@localhost/lw?host=db.example", None, False),
    ],
)
def test_a_store_off_this_machine_needs_verified_tls(
    url: str, ca_file: str | None, allowed: bool
) -> None:
    why = transport.postgres_refusal("url", url, ca_file=ca_file, allow_plaintext=False)
    assert (why is None) is allowed, why
    assert transport.postgres_refusal("url", url, ca_file=ca_file, allow_plaintext=True) is None


def test_libpq_is_told_the_ca_and_scram_only_off_this_machine() -> None:
    remote = "postgresql://lw@db.example/lw"
    assert tls_options(remote, "/ca.pem", 180000) == {
        "sslrootcert": "/ca.pem", "sslmode": "verify-full", "require_auth": "scram-sha-256"
    }  # fmt: skip
    assert tls_options(remote + "?sslmode=verify-ca", None, 180000) == {
        "require_auth": "scram-sha-256"
    }
    assert tls_options(remote + "?sslmode=verify-ca", None, 150007) == {}  # libpq 15: none
    assert tls_options(remote + "?require_auth=scram-sha-256,md5", None, 180000) == {}
    assert tls_options("postgresql://lw@127.0.0.1/lw", None, 180000) == {}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example/x", True),
        ("http://hooks.example/x", False),
        ("http://127.0.0.1:8080/x", True),
        ("http://[::1]/x", True),
        ("ftp://hooks.example/x", False),
    ],
)
def test_a_url_off_this_machine_needs_its_encrypted_scheme(url: str, allowed: bool) -> None:
    try:
        why = transport.scheme_refusal("$.x.url", url, ("https", "http"), allow_plaintext=False,
                                       what="the alerts")  # fmt: skip
    except transport.WrongScheme:
        why = "wrong scheme"
    assert (why is None) is allowed, why


def test_smtp_off_this_machine_needs_tls() -> None:
    refuse = transport.smtp_refusal
    assert refuse("host", "relay.example", starttls=False, ssl=False, allow_plaintext=False)
    assert not refuse("host", "relay.example", starttls=True, ssl=False, allow_plaintext=False)
    assert not refuse("host", "relay.example", starttls=False, ssl=True, allow_plaintext=False)
    assert not refuse("host", "localhost", starttls=False, ssl=False, allow_plaintext=False)
    assert not refuse("host", "relay.example", starttls=False, ssl=False, allow_plaintext=True)
