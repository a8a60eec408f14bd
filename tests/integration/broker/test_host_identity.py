"""`loginwatch definitions` imported with rabbitmqctl, and `loginwatch host` users.

A vhost of our own is created by importing the generated definitions; host
users made by `loginwatch host add` then publish to it with the real broker
enforcing what they may do: their own user_id, the events exchange, nothing else.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from consumer.broker import host_users as identity
from consumer.cli import main
from schemas import topology
from schemas.config import parse_config
from schemas.errors import ConfigError
from schemas.event import LoginEvent, encode
from schemas.nodes import broker_url
from tests.support.factories import event
from tests.support.services import AMQP_HOST, AMQP_PORT, Vhost, missing, rabbitmqctl
from tests.support.smtp_server import SmtpServer, free_port
from tests.support.worker_helpers import (
    depth,
    loginwatch,
    running_worker,
    take_all,
    wait_depth,
    write_config,
)

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


def publish(
    channel: pika.adapters.blocking_connection.BlockingChannel, user_id: str, as_user: str = ""
) -> None:
    """Publish with the routing key of ``as_user`` (default ``user_id``): the only keys a
    host user's topic permission admits are its own."""
    channel.basic_publish(
        topology.EXCHANGE,
        topology.routing_key(as_user or user_id),
        b"\x91\x01",
        pika.BasicProperties(user_id=user_id, delivery_mode=2),
        mandatory=True,
    )


def wait_lane(vh: Vhost, timeout: float = 10) -> str:
    """The alert lane that holds a message (the one just published), waiting for it."""
    deadline = time.monotonic() + timeout
    while True:
        for index in range(topology.DEFAULT_LANES):
            if depth(vh, topology.lane_queue(index)):
                return topology.lane_queue(index)
        assert time.monotonic() < deadline, "no lane holds the message"
        time.sleep(0.1)


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
    assert config.broker.nodes[0].startswith(f"amqp://host-{name}@")
    channel = channel_of(printed)
    publish(channel, topology.host_user(name))  # confirmed, or pika raises
    channel.connection.close()


def test_a_host_can_publish_as_itself_only(
    hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    config_a = hosts.add("a", capsys)
    hosts.add("b", capsys)
    channel = channel_of(config_a)
    user_a, user_b = (topology.host_user(hosts.prefix + n) for n in "ab")
    code = refused(lambda: publish(channel, user_b, as_user=user_a))
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
    limits = "max 8 connections, 16 channels"
    listed = capsys.readouterr().out
    assert f"{name}\thost-{name}\twrite-only\t{limits}\town keys only\n" in listed
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
    assert f"{name}\thost-{name}\tNOT write-only on {hosts.vhost}\tmax 8" in listed


# -- the worker and the dead queue, with real host users (issue 9 items 2, 6, 7, 8) ------


class Fleet:
    """A fresh vhost set up for a worker, with host users `host add` made on it."""

    def __init__(self, vh: Vhost, tmp_path: Path, smtp_port: int, strict: bool) -> None:
        self.vh = vh
        self.tmp_path = tmp_path
        self.config = write_config(tmp_path / "central.toml", vh, smtp_port=smtp_port)
        if strict:
            text = self.config.read_text()
            self.config.write_text(text.replace("[worker]\n", "[worker]\nrequire_user_id = true\n"))
        assert loginwatch("setup", "--config", str(self.config)).returncode == 0
        self.prefix = f"i{uuid.uuid4().hex[:6]}-"
        self.secrets = tmp_path / "secrets"
        self.names: list[str] = []

    def add(self, short: str) -> str:
        name = self.prefix + short
        self.names.append(name)
        added = loginwatch("host", "add", name, "--config", str(self.config),
                           "--secrets-dir", str(self.secrets))  # fmt: skip
        assert added.returncode == 0, added.stderr
        return name

    def publish(
        self, name: str, body: bytes, *, user_id: str | None = "own",
        headers: dict[str, Any] | None = None, message_id: str | None = None,
    ) -> None:  # fmt: skip
        """Publish to the events exchange as host ``name``'s broker user."""
        user = topology.host_user(name)
        password = (self.secrets / f"{name}.password").read_text().strip()
        url = amqp_url(self.vh.name, user, password)
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(
                delivery_mode=2, headers=headers, message_id=message_id,
                user_id=user if user_id == "own" else user_id,
            )  # fmt: skip
            key = topology.routing_key(user)
            channel.basic_publish(topology.EXCHANGE, key, body, properties, mandatory=True)

    def dead(self, *args: str) -> subprocess.CompletedProcess[str]:
        return loginwatch("dead", *args, "--config", str(self.config))

    def cleanup(self) -> None:
        for name in self.names:
            rabbitmqctl("delete_user", topology.host_user(name), check=False)


@pytest.fixture(params=[False, True], ids=["default-config", "require_user_id"])
def fleet(
    request: pytest.FixtureRequest, vh: Vhost, tmp_path: Path, smtp: SmtpServer
) -> Iterator[Fleet]:
    made = Fleet(vh, tmp_path, smtp.port, strict=request.param)
    yield made
    made.cleanup()


@pytest.fixture
def default_fleet(vh: Vhost, tmp_path: Path, smtp: SmtpServer) -> Iterator[Fleet]:
    made = Fleet(vh, tmp_path, smtp.port, strict=False)
    yield made
    made.cleanup()


def login(host: str, n: int = 0) -> LoginEvent:
    return event(host=host, id=os.urandom(16), tty=f"pts/{n}")


def subjects(smtp: SmtpServer) -> list[str]:
    return [str(m.message["Subject"]) for m in smtp.messages]


def reasons(vh: Vhost) -> list[str]:
    return sorted(
        _str(m.headers[topology.HEADER_REASON]) for m in take_all(vh, topology.DEAD_QUEUE)
    )


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_a_host_cannot_alert_as_another_host(fleet: Fleet, smtp: SmtpServer) -> None:
    alpha, bravo = fleet.add("alpha"), fleet.add("bravo")
    forged, real = login(bravo), login(alpha.upper(), 1)
    with running_worker(fleet.config, fleet.tmp_path / "worker.log") as worker:
        fleet.publish(alpha, encode(forged))
        fleet.publish(alpha, encode(real))
        # One pipeline thread, in queue order: once the second is mailed, the first is done.
        worker.wait_for(rf"{real.id_hex} immediate ops@test.example: sent")
        worker.wait_for(f"{forged.id_hex} dead-lettered: user_id")
    [subject] = subjects(smtp)
    assert f"alice@{alpha} " in subject  # its own name as its user says, not as it cased it
    assert reasons(fleet.vh) == [f'user_id "host-{alpha}" may not speak for host "{bravo}"']


def test_a_host_message_without_user_id_is_dead_with_the_reason(
    fleet: Fleet, smtp: SmtpServer
) -> None:
    alpha = fleet.add("alpha")
    bare, real = login(alpha), login(alpha, 1)
    with running_worker(fleet.config, fleet.tmp_path / "worker.log") as worker:
        fleet.publish(alpha, encode(bare), user_id=None)
        fleet.publish(alpha, encode(real))
        worker.wait_for(rf"{real.id_hex} immediate ops@test.example: sent")
    assert len(smtp.messages) == 1
    assert reasons(fleet.vh) == ["no user_id: host events must carry their broker user"]


def test_the_broker_refuses_an_empty_user_id_from_a_host(default_fleet: Fleet) -> None:
    alpha = default_fleet.add("alpha")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        default_fleet.publish(alpha, encode(login(alpha)), user_id="")
    assert closed.value.reply_code == 406


FORGED_HEADERS: dict[str, Any] = {
    topology.HEADER_ATTEMPT: 99,
    topology.HEADER_ORIGIN: topology.DEAD_QUEUE,
    topology.HEADER_REASON: "replayed by ops: fine",
    topology.HEADER_DEAD_AT: 1,
}


def test_a_forged_identity_header_is_not_laundered_by_dead_replay(
    fleet: Fleet, smtp: SmtpServer
) -> None:
    alpha, bravo = fleet.add("alpha"), fleet.add("bravo")
    forged, real = login(bravo), login(alpha, 1)
    headers = {topology.HEADER_USER_ID: topology.host_user(bravo), **FORGED_HEADERS}
    with running_worker(fleet.config, fleet.tmp_path / "worker.log") as worker:
        fleet.publish(alpha, encode(forged), user_id=None, headers=headers)
        worker.wait_for(f"{forged.id_hex} dead-lettered: no user_id")
        listing = fleet.dead("list")
        assert listing.returncode == 0, listing.stderr
        assert f"{forged.id_hex}  " in listing.stdout
        assert "no user_id" in listing.stdout and "replayed by ops" not in listing.stdout
        replayed = fleet.dead("replay", "--id", forged.id_hex[:8])
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"replayed {forged.id_hex} to {topology.ALERTS_QUEUE}" in replayed.stdout
        worker.wait_for(f"{forged.id_hex} dead-lettered: no user_id", count=2)
        fleet.publish(alpha, encode(real))
        worker.wait_for(rf"{real.id_hex} immediate ops@test.example: sent")
    [subject] = subjects(smtp)
    assert f"@{bravo} " not in subject
    [dead] = take_all(fleet.vh, topology.DEAD_QUEUE)
    # The copy under the central user says it arrived without one.
    assert (dead.user_id, _str(dead.headers[topology.HEADER_USER_ID])) == ("guest", "")


@pytest.mark.parametrize("strict", [False, True], ids=["default-config", "require_user_id"])
def test_identity_survives_park_dead_and_replay(vh: Vhost, tmp_path: Path, strict: bool) -> None:
    """SMTP down for the whole retry ladder: parked twice, dead, replayed once it is
    back — every copy under the central user — and mailed as the host it came from,
    even with require_user_id; the host's own attempt count is ignored."""
    port = free_port()
    fleet = Fleet(vh, tmp_path, port, strict=strict)
    try:
        alpha = fleet.add("alpha")
        real = login(alpha)
        with running_worker(fleet.config, tmp_path / "worker.log") as worker:
            fleet.publish(alpha, encode(real), headers=FORGED_HEADERS)
            worker.wait_for(rf"{real.id_hex} parked in loginwatch\.retry\.1s \(attempt 1 of 2\)")
            worker.wait_for(f"{real.id_hex} dead-lettered: gave up after 2 parked attempt")
            with SmtpServer(port=port) as smtp:
                replayed = fleet.dead("replay", "--id", real.id_hex)
                assert replayed.returncode == 0, replayed.stdout + replayed.stderr
                [mail] = smtp.wait_for(1, timeout=30)
                worker.wait_for(rf"{real.id_hex} immediate ops@test.example: sent")
    finally:
        fleet.cleanup()
    assert f"alice@{alpha} " in str(mail.message["Subject"])


def test_replay_of_a_message_the_broker_dead_lettered_trusts_none_of_its_headers(
    default_fleet: Fleet,
) -> None:
    """A work queue's delivery limit dead-letters a host's message with the host's
    headers on it: dead list shows the broker's reason, replay sends it back to that
    queue (not where a header says), carrying the host's user, not a forged one."""
    fleet = default_fleet
    alpha, bravo = fleet.add("alpha"), fleet.add("bravo")
    body = encode(login(alpha))
    # The lane alpha's routing key hashes to: where a first message of alpha's lands.
    fleet.publish(alpha, b"where")
    lane = wait_lane(fleet.vh)
    take_all(fleet.vh, lane)
    # An x-death of its own too, naming the queue and reason the broker will write: the
    # broker then updates that entry (its count) and keeps the rest of it.
    forged_death = {
        "queue": lane,
        "reason": "delivery_limit",
        "count": 0,
        "time": datetime(1970, 1, 2, tzinfo=UTC),
        "exchange": "",
        "routing-keys": [],
    }
    headers = {topology.HEADER_USER_ID: topology.host_user(bravo), **FORGED_HEADERS,
               topology.HEADER_ORIGIN: topology.retry_queue(1),
               "x-death": [forged_death]}  # fmt: skip
    fleet.publish(alpha, body, headers=headers)
    with pika.BlockingConnection(pika.URLParameters(fleet.vh.url())) as connection:
        channel = connection.channel()
        for _ in range(topology.DELIVERY_LIMIT + 5):
            method, _props, _body = channel.basic_get(lane)
            if method is None:
                break
            channel.basic_nack(method.delivery_tag, requeue=True)
    assert wait_depth(fleet.vh, topology.DEAD_QUEUE, 1) == 1
    listing = fleet.dead("list")
    assert f"broker: delivery_limit in {lane}" in listing.stdout, listing.stdout
    assert "replayed by ops" not in listing.stdout
    assert "1970-01-0" not in listing.stdout
    assert fleet.dead("replay", "--all").returncode == 0
    [copy] = take_all(fleet.vh, topology.ALERTS_QUEUE)
    assert copy.user_id == "guest"
    # The broker adds its x-delivery-count on delivery; nothing else is on the copy.
    copy.headers.pop("x-delivery-count", None)
    assert copy.headers == {topology.HEADER_USER_ID: topology.host_user(alpha)}
    assert depth(fleet.vh, topology.retry_queue(1)) == 0
