"""amqps:// with CA verification and client certificates, against a real TLS listener.

Unit tests cover ``schemas.tls.tls_context`` alone; the integration tests start a
private RabbitMQ node (tests/support/rabbit_node.py) from deploy/rabbitmq/rabbitmq-tls.conf
with a throwaway CA, then run the central side (``loginwatch setup``) and the
host hook against it, and show what an impostor or a misconfiguration meets.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from consumer.broker.connection import Broker, connection_parameters
from consumer.cli import main
from schemas import topology
from schemas.config import BrokerConfig, parse_config
from schemas.errors import BrokerError, ConfigError
from schemas.tls import tls_context
from schemas.wire import decode_event as decode
from tests.support.hookrun import HOOK, run_hook, spooled, wait_for
from tests.support.rabbit_node import ThrowawayCA, TlsNode

# --- tls_context alone -------------------------------------------------------


def test_plain_amqp_has_no_tls_context() -> None:
    assert tls_context(BrokerConfig(url="amqp://h/", allow_plaintext=True)) is None


def test_amqps_verifies_the_server_and_its_name_by_default() -> None:
    context = tls_context(BrokerConfig(url="amqps://broker.example/"))
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        (
            BrokerConfig(
                url="amqp://h/", allow_plaintext=True, ca_file="/etc/ssl/certs/ca-certificates.crt"
            ),
            "$.broker.url: ca_file/cert_file/key_file need an amqps:// URL",
        ),
        (
            BrokerConfig(url="amqps://h/", cert_file="/x.pem"),
            "$.broker: cert_file and key_file go together",
        ),
        (
            BrokerConfig(url="amqps://h/", ca_file="/nonexistent/ca.pem"),
            "$.broker.ca_file: cannot load /nonexistent/ca.pem: No such file or directory",
        ),
    ],
    ids=["tls files with amqp", "cert without key", "missing ca"],
)
def test_a_tls_misconfiguration_names_the_key(broker: BrokerConfig, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        tls_context(broker)
    assert str(error.value) == message


def test_a_file_that_is_not_pem_names_the_key(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"^\$\.broker\.ca_file: cannot load "):
        tls_context(BrokerConfig(url="amqps://h/", ca_file=str(junk)))


# --- against a private TLS node ---------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[TlsNode]:
    with TlsNode() as running:
        yield running


def setup(node: TlsNode, directory: Path) -> None:
    """``loginwatch setup`` over TLS: the exchange and the queues events route to."""
    config = directory / "central.toml"
    config.write_text(broker_toml(node))
    assert main(["setup", "--config", str(config)]) == 0


def broker_toml(node: TlsNode, host: str = "localhost", *, ca: Path | None = None) -> str:
    return (
        "[broker]\n"
        f'url = "amqps://guest:guest@{host}:{node.port}/%2F"\n'
        f'ca_file = "{ca or node.ca.cert}"\n'
        f'cert_file = "{node.client_cert}"\n'
        f'key_file = "{node.client_key}"\n'
        "connect_timeout = 5.0\n"
        "publish_timeout = 10.0\n"
    )


def connect_error(config_text: str) -> str:
    broker = Broker(parse_config(config_text).broker)
    with pytest.raises(BrokerError) as error:
        broker.connect()
    return str(error.value)


@pytest.mark.integration
def test_setup_runs_over_tls_with_a_client_certificate(
    node: TlsNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup(node, tmp_path)
    out, err = capsys.readouterr()
    assert "declared exchanges" in out
    # rabbitmqctl here manages the shared node, not this one: its limits are not set there.
    assert "queue limits NOT applied (rabbitmqctl here manages" in err
    assert "rabbitmqctl import_definitions" in err
    shared = subprocess.run(
        ["rabbitmqctl", "-q", "list_policies", "-p", "/"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "loginwatch-" not in shared.stdout


@pytest.mark.integration
def test_the_hook_publishes_over_tls(node: TlsNode, tmp_path: Path) -> None:
    toml = broker_toml(node) + f'[host]\nname = "tls-host"\n[spool]\ndir = "{tmp_path / "spool"}"\n'
    config = tmp_path / "loginwatch.toml"
    config.write_text(toml)
    connection = pika.BlockingConnection(connection_parameters(parse_config(toml).broker))
    channel = connection.channel()
    channel.exchange_declare(topology.EXCHANGE, topology.EXCHANGE_TYPE, durable=True)
    tap = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(tap, topology.EXCHANGE, topology.BINDING_KEY)
    assert run_hook(config).returncode == 0
    bodies: list[bytes] = []

    def arrived() -> bool:
        method, _, body = channel.basic_get(tap, auto_ack=True)
        if method is not None:
            bodies.append(body)
        return bool(bodies)

    assert wait_for(arrived, timeout=20), (spooled(tmp_path), node.log_tail())
    assert decode(bodies[0]).host == "tls-host"
    assert wait_for(lambda: spooled(tmp_path) == [])
    connection.close()


@pytest.mark.integration
def test_a_broker_certificate_from_another_ca_is_refused(node: TlsNode, tmp_path: Path) -> None:
    other = ThrowawayCA(tmp_path, "other-ca")
    assert "certificate verify failed" in connect_error(broker_toml(node, ca=other.cert))


@pytest.mark.integration
def test_a_broker_name_the_certificate_does_not_carry_is_refused(node: TlsNode) -> None:
    # The certificate names "localhost" only: 127.0.0.1 is another name.
    error = connect_error(broker_toml(node, host="127.0.0.1"))
    assert "certificate is not valid for '127.0.0.1'" in error


@pytest.mark.integration
def test_a_client_without_a_certificate_is_refused(node: TlsNode) -> None:
    toml = broker_toml(node).replace(f'cert_file = "{node.client_cert}"\n', "")
    toml = toml.replace(f'key_file = "{node.client_key}"\n', "")
    assert "cert_file" not in toml
    error = connect_error(toml)
    # TLS 1.3: the server's "certificate required" alert races its close.
    assert "certificate required" in error or "EOF occurred" in error, error


def flush(config: Path) -> subprocess.CompletedProcess[str]:
    """``loginwatch-hook flush`` once no detached publisher holds the spool."""
    result = subprocess.CompletedProcess[str]([], 0, "", "")

    def done() -> bool:
        nonlocal result
        result = subprocess.run(
            [HOOK, "--config", str(config), "flush"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return "another publisher" not in result.stdout

    assert wait_for(done, timeout=30)
    return result


@pytest.mark.integration
def test_events_wait_out_a_wrong_ca_and_flush_delivers_them_once_fixed(
    node: TlsNode, tmp_path: Path
) -> None:
    setup(node, tmp_path)
    other = ThrowawayCA(tmp_path, "other-ca")
    spool = f'[spool]\ndir = "{tmp_path / "spool"}"\n'
    config = tmp_path / "loginwatch.toml"
    config.write_text(broker_toml(node, ca=other.cert) + spool)
    assert run_hook(config).returncode == 0
    failed = flush(config)
    assert failed.returncode == 1, failed.stderr
    assert "certificate verify failed" in failed.stderr
    assert len(spooled(tmp_path)) == 1
    config.write_text(broker_toml(node) + spool)
    fixed = flush(config)
    assert (fixed.returncode, fixed.stdout.splitlines()[0]) == (
        0, "published 1, left 0, unusable 0"), fixed.stderr  # fmt: skip
    assert "heartbeat sent" in fixed.stdout  # over the same verified TLS
    assert spooled(tmp_path) == []


# --- no password in clear text to another machine -----------------------------

PLAIN_REMOTE = "amqp://host-web1:secret@198.51.100.7:5672/%2F"  # TEST-NET-2: never reached


def test_the_hook_refuses_a_plain_url_to_another_machine_and_keeps_the_event(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    config = tmp_path / "loginwatch.toml"
    config.write_text(
        f'[broker]\nurl = "{PLAIN_REMOTE}"\nconnect_timeout = 30.0\n[spool]\ndir = "{spool}"\n'
    )
    spool.mkdir(mode=0o700)
    (spool / "00000000000000000001-a.cap").write_bytes(b"an event spooled before the change")
    # flush names the key at once: a connect attempt to an unroutable address would take
    # connect_timeout, and send the password.
    result = subprocess.run(
        [HOOK, "--config", str(config), "flush"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 1
    assert "$.broker: url is amqp:// to 198.51.100.7" in result.stderr
    assert "set allow_plaintext = true" in result.stderr
    assert len(spooled(tmp_path)) == 1, "the event waits for a config that is fixed"


@pytest.mark.parametrize("command", [["setup"], ["check-config"], ["dead", "list"], ["status"]])
def test_every_central_command_refuses_a_plain_url_to_another_machine(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'[broker]\nurl = "{PLAIN_REMOTE}"\n')
    assert main([*command, "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "url is amqp:// to 198.51.100.7" in err and "allow_plaintext = true" in err


def test_allow_plaintext_is_an_explicit_choice(tmp_path: Path) -> None:
    broker = parse_config(f'[broker]\nurl = "{PLAIN_REMOTE}"\nallow_plaintext = true').broker
    (params,) = connection_parameters(broker)
    assert (params.host, params.ssl_options) == ("198.51.100.7", None)
