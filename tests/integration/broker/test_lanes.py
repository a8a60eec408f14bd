"""Alert lanes on the real broker: who may publish which routing key, where each key goes,
and ``loginwatch setup`` moving a live install of the release before lanes onto them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from consumer.broker.connection import Broker
from schemas import topology
from schemas.config import BrokerConfig
from schemas.event import encode
from tests.support.factories import event
from tests.support.lanes import lane_of
from tests.support.services import Vhost, rabbitmqctl
from tests.support.worker_helpers import (
    alerts_depth,
    depth,
    loginwatch,
    take_all,
    wait_depth,
    write_config,
)

pytestmark = pytest.mark.integration


class Users:
    """Broker users of this test's own (users are the node's, not a vhost's)."""

    def __init__(self, vh: Vhost, tmp_path: Path) -> None:
        self.vh = vh
        self.tag = uuid.uuid4().hex[:6]
        self.secrets = tmp_path / "secrets"
        self.config = write_config(tmp_path / "central.toml", vh)
        self.made: list[str] = []
        self.sent = 0

    def add(self, name: str) -> str:
        """``loginwatch host add``; the host's name."""
        added = loginwatch("host", "add", name, "--config", str(self.config), "--secrets-dir",
                           str(self.secrets))  # fmt: skip
        assert added.returncode == 0, added.stderr
        self.made.append(topology.host_user(name))
        return name

    def add_old(self, name: str) -> str:
        """A host user as ``host add`` made it before lanes: no topic permission."""
        user = topology.host_user(name)
        rabbitmqctl("add_user", user, "old-password")
        self.made.append(user)
        rabbitmqctl("set_permissions", "-p", self.vh.name, user,
                    *topology.HOST_PERMISSIONS.values())  # fmt: skip
        return name

    def password(self, name: str) -> str:
        path = self.secrets / f"{name}.password"
        return path.read_text().strip() if path.exists() else "old-password"

    def publish(self, name: str, key: str) -> int:
        """Publish as host ``name`` with routing key ``key``; 0, or the refusal's code."""
        user = topology.host_user(name)
        url = self.vh.url(user, self.password(name))
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            props = pika.BasicProperties(user_id=user, delivery_mode=2)
            self.sent += 1  # each one a new event (the factory's id follows its fields)
            body = encode(event(host=name, tty=f"pts/{self.sent}"))
            try:
                channel.basic_publish(topology.EXCHANGE, key, body, props, mandatory=True)
            except pika.exceptions.ChannelClosedByBroker as exc:
                return int(exc.reply_code)
        return 0

    def cleanup(self) -> None:
        for user in self.made:
            rabbitmqctl("delete_user", user, check=False)


@pytest.fixture
def users(vh: Vhost, tmp_path: Path) -> Iterator[Users]:
    made = Users(vh, tmp_path)
    yield made
    made.cleanup()


def setup(config: Path, *lines: str) -> str:
    if lines:
        text = config.read_text().replace("[broker]\n", "[broker]\n" + "\n".join(lines) + "\n")
        config.write_text(text)
    done = loginwatch("setup", "--config", str(config))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_host_user_may_publish_its_own_routing_keys_only(users: Users) -> None:
    setup(users.config)
    web = users.add(f"web1.{users.tag}.example.org")
    other = users.add(f"db1-{users.tag}")
    user = topology.host_user(web)
    assert users.publish(web, topology.routing_key(user)) == 0
    # ACCESS_REFUSED: an old hook's key, another host's lane, the regex trick on the dots.
    assert users.publish(web, "login") == 403
    assert users.publish(web, topology.routing_key(topology.host_user(other))) == 403
    twisted = user.replace(".", "X", 1)
    assert users.publish(web, f"{twisted}.event") == 403
    assert users.publish(web, topology.routing_key(user) + ".x") == 403

    # Why the pattern names the user literally: RabbitMQ puts ``{username}`` into it raw,
    # so a host whose name has dots could publish keys that hash into lanes of its choice.
    rabbitmqctl("set_topic_permissions", "-p", users.vh.name, user, topology.EXCHANGE,
                r"^{username}\.[a-z]+$", "^$")  # fmt: skip
    assert users.publish(web, f"{twisted}.event") == 0
    lanes = {lane_of(users.vh, user.replace(".", c, 1)) for c in "XYZWVU"}
    assert len(lanes) > 1, "one host could spread over several lanes"


def _old_topology(vh: Vhost) -> None:
    """The queues and bindings as the release before lanes declared them."""
    with Broker(BrokerConfig(url=vh.url())) as broker:
        broker.declare(topology.queue_specs((1, 2), lanes=0))
    with pika.BlockingConnection(pika.URLParameters(vh.url())) as connection:
        channel = connection.channel()
        channel.queue_unbind(topology.ALERTS_QUEUE, topology.EXCHANGE, topology.LEGACY_KEY)
        channel.queue_bind(topology.ALERTS_QUEUE, topology.EXCHANGE, topology.BINDING_KEY)
        channel.exchange_unbind(topology.LANES_EXCHANGE, topology.EXCHANGE,
                                topology.type_binding(topology.EVENT_TYPE))  # fmt: skip
        channel.exchange_delete(topology.LANES_EXCHANGE)


def _bindings(vh: Vhost, destination: str) -> set[str]:
    rows = json.loads(rabbitmqctl("list_bindings", "-p", vh.name, "source_name",
                                  "destination_name", "routing_key", "--formatter",
                                  "json").stdout)  # fmt: skip
    return {row["routing_key"] for row in rows if row["destination_name"] == destination
            and row["source_name"] == topology.EXCHANGE}  # fmt: skip


def test_setup_moves_a_live_install_onto_lanes_and_loses_nothing(users: Users) -> None:
    vh = users.vh
    _old_topology(vh)
    assert _bindings(vh, topology.ALERTS_QUEUE) == {"#"}
    old = users.add_old(f"old-{users.tag}")
    for n in range(3):  # events an old hook sent before the upgrade, waiting for a worker
        assert users.publish(old, "login") == 0 or n < 0
    assert wait_depth(vh, topology.ALERTS_QUEUE, 3) == 3

    said = setup(users.config)
    assert f"1 host user(s) made before lanes ({topology.host_user(old)})" in said
    assert "loginwatch host strict NAME" in said
    assert _bindings(vh, topology.ALERTS_QUEUE) == {"*"}, "the old catch-all is unbound"
    assert _bindings(vh, topology.LANES_EXCHANGE) == {"*.#.event", "*.#.heartbeat", "*.#.logout"}
    # The old hook goes on working, into the shared queue; an upgraded one into its lane.
    assert users.publish(old, "login") == 0
    assert users.publish(old, topology.routing_key(topology.host_user(old))) == 0
    assert wait_depth(vh, topology.ALERTS_QUEUE, 4) == 4
    again = setup(users.config)  # idempotent
    assert "made before lanes" not in again
    # Nothing lost, nothing doubled: what waited stays in the shared queue, which every
    # worker still consumes (test_worker_e2e and the flood test show both kinds mailed).
    assert alerts_depth(vh) == 5

    strict = loginwatch("host", "strict", old, "--config", str(users.config))
    assert strict.returncode == 0, strict.stderr
    assert users.publish(old, "login") == 403
    assert users.publish(old, topology.routing_key(topology.host_user(old))) == 0


def test_each_key_goes_where_its_bindings_say_and_fewer_lanes_retire_the_rest(
    vh: Vhost, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "central.toml", vh)
    setup(config)
    lane = lane_of(vh, "host-web1")
    with pika.BlockingConnection(pika.URLParameters(vh.url())) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for key in ["host-web1.event"] * 5 + ["login", "host-web1.heartbeat", "event"]:
            channel.basic_publish(topology.EXCHANGE, key, b"x", mandatory=True)
    assert wait_depth(vh, lane, 5) == 5  # one speaker's events, one lane
    # Its heartbeat reaches a lane too (the one its key hashes to: docs/central.md), and
    # one-word keys (an old hook's, and "event" alone) reach the shared queue only.
    assert alerts_depth(vh) == 5 + 1 + 2
    assert depth(vh, topology.ALERTS_QUEUE) == 2
    assert wait_depth(vh, topology.DIGEST_QUEUE, 8) == 8  # the digest takes every key
    for name in topology.alert_queues(topology.DEFAULT_LANES):
        take_all(vh, name)

    # Fewer lanes: the rest are unbound, what they hold moves to the shared queue.
    last = topology.lane_queue(topology.DEFAULT_LANES - 1)
    with pika.BlockingConnection(pika.URLParameters(vh.url())) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        props = pika.BasicProperties(user_id="guest", message_id="m-1", delivery_mode=2)
        channel.basic_publish(topology.REROUTE_EXCHANGE, last, encode(event()), props)
    assert wait_depth(vh, last, 1) == 1

    said = setup(config, "alert_lanes = 4")
    assert f"retired lane {last}: 1 message(s) moved to {topology.ALERTS_QUEUE}" in said
    gone = [topology.lane_queue(i) for i in range(4, topology.DEFAULT_LANES)]
    listed = rabbitmqctl("list_queues", "-p", vh.name, "name").stdout.split()
    assert not set(gone) & set(listed)
    [moved] = take_all(vh, topology.ALERTS_QUEUE)
    assert moved.body == encode(event())
    assert moved.headers[topology.HEADER_USER_ID] == "guest"  # its identity kept
    assert "retired lane" not in setup(config, "")  # nothing left to do
