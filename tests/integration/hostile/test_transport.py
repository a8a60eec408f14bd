"""One transport rule for every client (issue 17, finding 5): verified TLS to any peer off
loopback, unless the section that names it says ``allow_plaintext``.

Before, a PostgreSQL store URL to another machine without ``sslmode`` passed ``check-config``,
and a man in the middle that answered "no TLS" and asked for a cleartext password got it
from libpq; ``[smtp]`` to a remote relay without TLS passed too unless a username was set,
so a relay in the middle read every alert, or answered 250 and dropped it.

Here the men in the middle are real servers of ours (tests/support/fake_peers.py) on a
test network's bridge address, and the client runs in a network namespace of its own
(tests/support/netns.py), another machine as far as its sockets can tell.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from consumer.cli import main
from tests.support.fake_peers import GSS_REQUEST, SSL_REQUEST, FakePostgres, FakeSmtpRelay
from tests.support.netns import Machine, Network
from tests.support.pg_server import write_secret
from tests.support.rabbit_node import ThrowawayCA

BROKER = '[broker]\nurl = "amqp://guest:guest@127.0.0.1:5672/%2F"\n'


@pytest.mark.parametrize(
    ("section", "refusal"),
    [
        ('[store]\nurl = "postgresql://lw@db.example/lw"\n',
         "$.store: url names db.example with no sslmode (libpq's default, prefer): the store"
         " password"),
        ('[store]\nurl = "postgresql://lw@10.0.0.5:5432/lw?sslmode=require"\n',
         "$.store: url names 10.0.0.5 with sslmode=require"),
        ('[smtp]\nhost = "relay.example"\nport = 587\n',
         "$.smtp: host is SMTP without TLS to relay.example, which would send every alert"
         " (and the SMTP password) to whoever answers unencrypted: set starttls = true"),
        ('[smtp]\nhost = "relay.example"\nusername = "lw"\n',
         "$.smtp: host is SMTP without TLS to relay.example"),
    ],
    ids=["store-no-sslmode", "store-require", "smtp-no-tls", "smtp-auth-no-tls"],
)  # fmt: skip
def test_a_peer_off_loopback_without_verified_tls_is_refused_when_the_config_is_read(
    tmp_path: Path, section: str, refusal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "loginwatch.toml"
    config.write_text(BROKER + section)
    for command in ("check-config", "worker"):  # as the console script runs them
        assert main([command, "--config", str(config)]) == 1
        said = capsys.readouterr()
        assert refusal in said.err, (command, said)
    config.write_text(BROKER + section + "allow_plaintext = true\n")  # the explicit opt-in
    assert main(["check-config", "--config", str(config), "--as-user", "root"]) == 0


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with Network(1) as net:
        yield net


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


def run_in(machine: Machine, *args: str) -> tuple[int, str]:
    """``loginwatch ARGS`` on the other machine (its own network namespace)."""
    done = machine.run(sys.executable, "-m", "consumer.cli", *args, timeout=60)
    return done.returncode, done.stdout + done.stderr


def requests_only(received: bytes) -> bool:
    """Whether a client sent nothing but SSLRequest/GSSENCRequest packets (8 bytes each)."""
    chunks = [received[n : n + 8] for n in range(0, len(received), 8)]
    return bool(chunks) and all(
        len(c) == 8 and struct.unpack("!II", c) in ((8, SSL_REQUEST), (8, GSS_REQUEST))
        for c in chunks
    )


def test_the_store_never_sends_its_password_to_a_server_that_refuses_tls(
    network: Network, ca: ThrowawayCA, tmp_path: Path
) -> None:
    other = network.machines[0]
    password = write_secret(tmp_path / "store.password", "s3cret-store-pw\n")
    config = tmp_path / "loginwatch.toml"
    with FakePostgres(network.address) as pg:
        url = f"postgresql://loginwatch@{network.address}:{pg.port}/lw"
        config.write_text(f'{BROKER}[store]\nurl = "{url}"\npassword_file = "{password}"\n'
                          f'ca_file = "{ca.cert}"\n')  # fmt: skip
        code, said = run_in(other, "digest", "--preview", "--config", str(config))
        assert code == 1, said
        assert "cannot connect to the PostgreSQL store" in said
        assert "SSL" in said  # libpq: the server does not support SSL, but it was required
        assert requests_only(pg.received), pg.received  # not even the user name was sent
        assert pg.password is None
        # allow_plaintext without sslmode: libpq goes on in clear text and names the user,
        # but require_auth=scram-sha-256 (libpq >= 16) still never answers a request for
        # the cleartext password.
        config.write_text(f'{BROKER}[store]\nurl = "{url}"\npassword_file = "{password}"\n'
                          "allow_plaintext = true\n")  # fmt: skip
        code, said = run_in(other, "digest", "--preview", "--config", str(config))
        assert code == 1, said
        assert b"user\x00loginwatch\x00" in pg.received
        assert pg.password is None
        # The man in the middle works: a client as ours was before (libpq's defaults) sends it.
        with pytest.raises(psycopg.Error):
            psycopg.connect(url, password="s3cret-store-pw", connect_timeout=5)
        assert pg.password == b"s3cret-store-pw"


def test_no_alert_and_no_smtp_password_reach_a_relay_that_strips_starttls(
    network: Network, tmp_path: Path
) -> None:
    other = network.machines[0]
    password = write_secret(tmp_path / "smtp.password", "s3cret-smtp-pw\n")
    config = tmp_path / "loginwatch.toml"
    send = ("send-test", "--to", "ops@test.example", "--config", str(config))
    with FakeSmtpRelay(network.address) as relay:
        smtp = f'[smtp]\nhost = "{network.address}"\nport = {relay.port}\n'
        # Without TLS the config is refused before a connection is made.
        config.write_text(f'{BROKER}{smtp}username = "lw"\npassword_file = "{password}"\n')
        code, said = run_in(other, *send)
        assert code == 1
        assert "$.smtp: host is SMTP without TLS" in said
        assert relay.connections == 0
        # With STARTTLS that the relay does not offer: EHLO, then nothing.
        config.write_text(f'{BROKER}{smtp}starttls = true\nusername = "lw"\n'
                          f'password_file = "{password}"\n')  # fmt: skip
        code, said = run_in(other, *send)
        assert code == 1
        assert "did not offer STARTTLS" in said
        verbs = [line.split()[0].upper() for line in relay.received.splitlines() if line]
        assert set(verbs) <= {b"EHLO", b"QUIT"}, relay.received
        assert b"s3cret" not in relay.received
        # What the rule prevents: with allow_plaintext the alert goes out in clear text.
        config.write_text(f"{BROKER}{smtp}allow_plaintext = true\n")
        code, said = run_in(other, *send)
        assert code == 0, said
        assert b"mail from" in relay.received.lower()
        assert b"[loginwatch test]" in relay.received
