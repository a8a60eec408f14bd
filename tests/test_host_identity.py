"""`loginwatch definitions` imported with rabbitmqctl, and `loginwatch host` users.

A vhost of our own is created by importing the generated definitions; host
users made by `loginwatch host add` then publish to it with the real broker
enforcing what they may do: their own user_id, the events exchange, nothing else.
"""

from __future__ import annotations

import functools
import json
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from consumer import hosts as identity
from consumer.cli import main
from schemas import topology
from schemas.config import broker_url, parse_config
from schemas.errors import ConfigError
from tests.conftest import AMQP_HOST, AMQP_PORT, missing, rabbitmqctl

pytestmark = pytest.mark.integration


def amqp_url(vhost: str, user: str = "guest", password: str = "guest") -> str:
    return (
        f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{AMQP_HOST}:{AMQP_PORT}"
        f"/{quote(vhost, safe='')}"
    )


@pytest.fixture(scope="module")
def imported_vhost() -> Iterator[str]:
    """A vhost created by `rabbitmqctl import_definitions` of `loginwatch definitions`."""
    if shutil.which("rabbitmqctl") is None:
        missing("rabbitmqctl (apt-get install rabbitmq-server)")
    vhost = f"loginwatch-defs-{uuid.uuid4().hex[:8]}"
    definitions = subprocess.run(
        [str(Path(sys.executable).with_name("loginwatch")), "definitions", "--vhost", vhost],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    # rabbitmqctl runs as the rabbitmq user (and 3.10 rejects "-" for stdin):
    # the file must be world-readable; it holds no secret.
    directory = Path(tempfile.mkdtemp(prefix="loginwatch-defs-"))
    directory.chmod(0o755)
    path = directory / "definitions.json"
    path.write_text(definitions)
    path.chmod(0o644)
    imported = subprocess.run(
        ["rabbitmqctl", "-q", "import_definitions", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(directory)
    assert imported.returncode == 0, imported.stderr
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost
    rabbitmqctl("delete_vhost", vhost, check=False)


def test_imported_definitions_create_every_queue_with_its_arguments(imported_vhost: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url(imported_vhost)))
    try:
        channel = connection.channel()
        for spec in topology.queue_specs():
            # A passive declare with different arguments would not notice them:
            # redeclaring with ours would close the channel on any mismatch.
            channel.queue_declare(spec.name, passive=True)
            channel.queue_declare(spec.name, durable=True, arguments=dict(spec.arguments))
        for name, kind in topology.EXCHANGES:
            channel.exchange_declare(name, kind, durable=True)
    finally:
        connection.close()
    rows = json.loads(
        rabbitmqctl(
            "list_queues", "-p", imported_vhost, "name", "arguments", "--formatter", "json"
        ).stdout
    )
    # rabbitmqctl lists arguments as [key, AMQP type, value] triples.
    arguments = {row["name"]: {k: v for k, _, v in row["arguments"]} for row in rows}
    assert arguments == {spec.name: spec.arguments for spec in topology.queue_specs()}


def test_setup_after_the_import_finds_nothing_to_disagree_with(
    imported_vhost: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'[broker]\nurl = "{amqp_url(imported_vhost)}"\n')
    assert main(["setup", "--config", str(config)]) == 0
    assert "declared exchanges" in capsys.readouterr().out


class Hosts:
    """`loginwatch host …` against the imported vhost; deletes its users at the end."""

    def __init__(self, vhost: str, tmp_path: Path) -> None:
        self.vhost = vhost
        self.prefix = f"t{uuid.uuid4().hex[:6]}-"
        self.secrets = tmp_path / "hosts"
        self.config = tmp_path / "central.toml"
        self.config.write_text(f'[broker]\nurl = "{amqp_url(vhost)}"\n')
        self.created: list[str] = []

    def cli(self, *args: str) -> int:
        return main(
            ["host", *args, "--config", str(self.config), "--secrets-dir", str(self.secrets)]
        )

    def add(self, short: str, capsys: pytest.CaptureFixture[str]) -> str:
        """`host add`; returns the printed config with the password file's real path."""
        name = self.prefix + short
        assert self.cli("add", name) == 0
        self.created.append(name)
        printed = capsys.readouterr().out
        return printed.replace(identity.HOST_PASSWORD_FILE, str(self.password_file(name)))

    def password_file(self, name: str) -> Path:
        return self.secrets / f"{name}.password"

    def cleanup(self) -> None:
        for name in self.created:
            rabbitmqctl("delete_user", topology.host_user(name), check=False)


@pytest.fixture
def hosts(imported_vhost: str, tmp_path: Path) -> Iterator[Hosts]:
    made = Hosts(imported_vhost, tmp_path)
    yield made
    made.cleanup()


def channel_of(config_text: str) -> pika.adapters.blocking_connection.BlockingChannel:
    config = parse_config(config_text)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url(config.broker)))
    channel = connection.channel()
    channel.confirm_delivery()
    return channel


def publish(channel: pika.adapters.blocking_connection.BlockingChannel, user_id: str) -> None:
    channel.basic_publish(
        topology.EXCHANGE,
        "login",
        b"\x91\x01",
        pika.BasicProperties(user_id=user_id, delivery_mode=2),
        mandatory=True,
    )


def refused(action: Callable[[], object]) -> int:
    """The AMQP reply code with which the broker closed the channel."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        action()
    return int(closed.value.reply_code)


def test_host_add_prints_a_working_config_and_a_private_password_file(
    hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = hosts.add("a", capsys)
    name = hosts.prefix + "a"
    mode = hosts.password_file(name).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    config = parse_config(printed)
    assert config.host.name == name
    assert config.broker.url.startswith(f"amqp://host-{name}@")
    channel = channel_of(printed)
    publish(channel, topology.host_user(name))  # confirmed, or pika raises
    channel.connection.close()


def test_a_host_can_publish_as_itself_only(
    hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    config_a = hosts.add("a", capsys)
    hosts.add("b", capsys)
    channel = channel_of(config_a)
    code = refused(lambda: publish(channel, topology.host_user(hosts.prefix + "b")))
    assert code == 406  # PRECONDITION_FAILED: user_id does not match the connection's user
    channel.connection.close()


def test_a_host_cannot_read_declare_or_reach_other_exchanges(
    hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    config_a = hosts.add("a", capsys)
    user = topology.host_user(hosts.prefix + "a")
    attempts: dict[str, Callable[[pika.adapters.blocking_connection.BlockingChannel], object]] = {
        "read the alerts queue": lambda ch: ch.basic_get(topology.ALERTS_QUEUE),
        "read the dead queue": lambda ch: ch.basic_consume(topology.DEAD_QUEUE, lambda *a: None),
        "declare a queue": lambda ch: ch.queue_declare("mine", durable=False),
        "declare an exchange": lambda ch: ch.exchange_declare("mine", "fanout"),
        "purge a queue": lambda ch: ch.queue_purge(topology.ALERTS_QUEUE),
        "publish to the reroute exchange": lambda ch: ch.basic_publish(
            topology.REROUTE_EXCHANGE,
            topology.ALERTS_QUEUE,
            b"x",
            pika.BasicProperties(user_id=user),
            mandatory=True,
        ),
    }
    codes = {}
    for what, attempt in attempts.items():
        channel = channel_of(config_a)
        codes[what] = refused(functools.partial(attempt, channel))
        channel.connection.close()
    assert codes == dict.fromkeys(attempts, 403)  # ACCESS_REFUSED


def test_host_list_add_again_and_remove(hosts: Hosts, capsys: pytest.CaptureFixture[str]) -> None:
    hosts.add("a", capsys)
    name = hosts.prefix + "a"
    assert hosts.cli("list") == 0
    assert f"{name}\thost-{name}\twrite-only\n" in capsys.readouterr().out
    # A second add must not silently replace the password the host has.
    assert hosts.cli("add", name) == 1
    assert "exists already" in capsys.readouterr().err
    password = hosts.password_file(name).read_text().strip()
    assert hosts.cli("remove", name) == 0
    assert not hosts.password_file(name).exists()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(
            pika.URLParameters(amqp_url(hosts.vhost, topology.host_user(name), password))
        )
    assert hosts.cli("remove", name) == 1


@pytest.mark.parametrize(
    ("central", "host_url"),
    [
        ("amqp://loginwatch@127.0.0.1:5672/%2F", "amqp://host-web-1@127.0.0.1:5672/%2F"),
        (
            "amqps://lw:secret@broker.example.org:5671/prod",
            "amqps://host-web-1@broker.example.org:5671/prod",
        ),
        ("amqps://[2001:db8::1]/", "amqps://host-web-1@[2001:db8::1]/"),
    ],
)
def test_the_host_url_is_the_central_one_with_the_host_user_and_no_password(
    central: str, host_url: str
) -> None:
    assert identity.host_url(central, "web-1") == host_url


@pytest.mark.parametrize(
    ("url", "vhost"),
    [("amqp://h/", "/"), ("amqp://h", "/"), ("amqp://h/%2F", "/"), ("amqp://h/prod%2Fa", "prod/a")],
)
def test_the_vhost_of_a_url(url: str, vhost: str) -> None:
    assert identity.vhost_of(url) == vhost


@pytest.mark.parametrize("name", ["", "-web", "web_1", "a b", "web.", "evil\nname", "x" * 64])
def test_a_bad_host_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not a host name"):
        identity.host_name(name)


def test_host_names_are_lower_cased() -> None:
    assert identity.host_name("Web-1.Example.ORG") == "web-1.example.org"


def test_a_failed_host_add_leaves_no_user_and_no_password_file(
    hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    name = hosts.prefix + "novhost"
    hosts.created.append(name)
    assert hosts.cli("add", name, "--vhost", f"no-such-vhost-{hosts.prefix}") == 1
    assert "no-such-vhost" in capsys.readouterr().err
    assert not hosts.password_file(name).exists()
    users = rabbitmqctl("list_users", "--formatter", "json").stdout
    assert topology.host_user(name) not in users


def test_host_add_with_url_needs_no_config_and_prints_tls_settings(
    hosts: Hosts, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = hosts.prefix + "tls"
    url = f"amqps://broker.example.org:5671/{quote(hosts.vhost, safe='')}"
    args = ["host", "add", name, "--url", url, "--config", str(tmp_path / "none.toml")]
    assert main([*args, "--secrets-dir", str(hosts.secrets)]) == 0
    hosts.created.append(name)
    config = parse_config(capsys.readouterr().out)
    assert config.broker.url == f"amqps://host-{name}@broker.example.org:5671/" + quote(
        hosts.vhost, safe=""
    )
    assert config.broker.ca_file == "/etc/loginwatch/ca.pem"


def test_host_list_flags_a_host_user_whose_permissions_were_widened(
    hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts.add("wide", capsys)
    name = hosts.prefix + "wide"
    rabbitmqctl("set_permissions", "-p", hosts.vhost, topology.host_user(name), ".*", ".*", ".*")
    assert hosts.cli("list") == 0
    listed = capsys.readouterr().out
    assert f"{name}\thost-{name}\tNOT write-only on {hosts.vhost}\n" in listed
