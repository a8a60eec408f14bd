"""Routing keys, topic permission patterns and the lane topology as data."""

from __future__ import annotations

import re

import pytest

from consumer.broker.connection import _plugin_hint
from schemas import topology
from schemas.errors import BrokerError


@pytest.mark.parametrize(
    ("user", "key", "strict", "old_hooks"),
    [
        ("host-web1", "host-web1.event", True, True),
        ("host-web1", "host-web1.heartbeat", True, True),  # a later message type
        ("host-web1", "login", False, True),  # an old hook's one-word key
        ("host-web1", "host-web2.event", False, False),  # another host's lane
        ("host-web1", "host-web1.x.event", False, False),  # a word more: another key
        ("host-web1", "host-web1.Event", False, False),
        ("host-web1", "host-web1.", False, False),
        ("host-web1.example.org", "host-web1.example.org.event", True, True),
        # RabbitMQ's {username} would put the dots in raw: any character would match them.
        ("host-web1.example.org", "host-web1Xexample.org.event", False, False),
        ("host-web1.example.org", "host-web1-example.org.event", False, False),
        ("host-a", "host-ab.event", False, False),
        ("relay(1)+", "relay(1)+.event", True, True),  # any user name is taken literally
    ],
)
def test_a_user_may_write_its_own_keys_only(
    user: str, key: str, strict: bool, old_hooks: bool
) -> None:
    assert bool(re.search(topology.topic_write_pattern(user), key)) is strict
    assert bool(re.search(topology.topic_write_pattern(user, old_hooks=True), key)) is old_hooks


def test_the_transitional_pattern_is_told_apart() -> None:
    assert topology.allows_old_hooks(topology.topic_write_pattern("host-a", old_hooks=True))
    assert not topology.allows_old_hooks(topology.topic_write_pattern("host-a"))


def test_routing_keys_name_the_user_and_fit_amqp() -> None:
    assert topology.routing_key("host-web1") == "host-web1.event"
    assert topology.message_type("failure") == topology.message_type("login") == "event"
    # The longest key is host-NAME.heartbeat: names of up to 240 characters.
    assert topology.routing_key_fits(topology.host_user("a" * 240))
    assert not topology.routing_key_fits(topology.host_user("a" * 241))
    with pytest.raises(ValueError, match="too long"):
        topology.routing_key(topology.host_user("a" * 245))


def test_every_lane_is_a_quorum_queue_on_the_hash_exchange() -> None:
    specs = {spec.name: spec for spec in topology.queue_specs((30,), lanes=3)}
    for index in range(3):
        lane = specs[topology.lane_queue(index)]
        assert lane.arguments == specs[topology.ALERTS_QUEUE].arguments
        assert set(lane.bindings) == {
            (topology.LANES_EXCHANGE, topology.LANE_WEIGHT),
            (topology.REROUTE_EXCHANGE, lane.name),
        }
    assert topology.lane_queue(3) not in specs
    # The shared queue keeps old hooks' one-word keys and the parked alerts, no more `#`.
    assert set(specs[topology.ALERTS_QUEUE].bindings) == {
        (topology.EXCHANGE, "*"),
        (topology.REROUTE_EXCHANGE, topology.ALERTS_QUEUE),
    }
    assert (topology.EXCHANGE, topology.ALERTS_QUEUE, "#") in topology.RETIRED_BINDINGS
    assert topology.alert_queues(3) == (topology.ALERTS_QUEUE, *map(topology.lane_queue, range(3)))


def test_the_lanes_exchange_is_bound_per_message_type() -> None:
    """What RabbitMQ makes of the binding key is in tests/integration/broker/test_lanes.py.
    The worker handles events, heartbeats and logouts: one binding per type."""
    assert topology.EXCHANGE_BINDINGS == (
        (topology.LANES_EXCHANGE, topology.EXCHANGE, "*.#.event"),
        (topology.LANES_EXCHANGE, topology.EXCHANGE, "*.#.heartbeat"),
        (topology.LANES_EXCHANGE, topology.EXCHANGE, "*.#.logout"),
    )


def test_the_alerts_policy_covers_every_lane() -> None:
    [alerts] = [p for p in topology.policy_specs(10, 1000) if p.name == "loginwatch-alerts"]
    for name in topology.alert_queues(topology.MAX_LANES):
        assert re.search(alerts.pattern, name), name
    assert not re.search(alerts.pattern, "loginwatch.alerts.x")


def test_a_broker_without_the_plugin_is_told_how_to_get_it() -> None:
    refused = (
        'exchange loginwatch.lanes: (503, "COMMAND_INVALID - unknown exchange type'
        " 'x-consistent-hash'\")"
    )
    fix = "rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"
    with pytest.raises(BrokerError, match=fix), _plugin_hint(topology.LANES_EXCHANGE_TYPE):
        raise BrokerError(refused)
    with pytest.raises(BrokerError) as other, _plugin_hint("topic"):
        raise BrokerError(refused)
    assert "rabbitmq-plugins" not in str(other.value)
