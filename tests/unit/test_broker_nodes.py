"""Several broker nodes in ``[broker]``: the config's rules, the node a host starts at, the
members each queue gets, and what ``host add`` and ``definitions`` make of a cluster."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from consumer.broker.definitions_file import definitions
from consumer.broker.host_users import host_config
from schemas import topology
from schemas.config import DEFAULT_BROKER_URL, BrokerConfig, parse_config
from schemas.errors import ConfigError
from schemas.nodes import NodeCursor, broker_url, broker_urls, broker_user, broker_vhost, node_order
from schemas.tls import tls_context

NODES = ("amqps://lw@mq1.example:5671/fleet", "amqps://lw@mq2.example:5671/fleet",
         "amqps://lw@mq3.example:5671/fleet")  # fmt: skip


def broker(text: str) -> BrokerConfig:
    return parse_config(f"[broker]\n{text}\n", "lw.toml").broker


def urls_toml(*urls: str) -> str:
    return "urls = [" + ", ".join(f'"{url}"' for url in urls) + "]"


def test_neither_url_nor_urls_is_the_default_node() -> None:
    assert broker("").nodes == (DEFAULT_BROKER_URL,)
    assert BrokerConfig().nodes == (DEFAULT_BROKER_URL,)


def test_url_is_one_node_and_urls_every_node_in_order() -> None:
    assert broker(f'url = "{NODES[1]}"').nodes == (NODES[1],)
    cluster = broker(urls_toml(*NODES))
    assert cluster.nodes == NODES
    assert (broker_user(cluster), broker_vhost(cluster)) == ("lw", "fleet")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'url = "{NODES[0]}"\n{urls_toml(*NODES)}', "$.broker: url and urls exclude each other"),
        ("urls = []", "$.broker.urls: expected array of length >= 1"),
        (urls_toml(NODES[0], "http://mq2.example/"), "$.broker: urls[1]: expected an amqp://"),
        (urls_toml(NODES[0], NODES[1], NODES[0]), "$.broker: urls[2] names the node of urls[0]"),
        (
            urls_toml(NODES[0], "amqps://other@mq2.example:5671/fleet"),
            "$.broker: urls[1] has another user than urls[0]: every node of a cluster takes the"
            " same user, password (or password_file) and vhost",
        ),
        (
            urls_toml("amqps://lw:a@mq1.example/fleet", "amqps://lw:b@mq2.example/other"),
            "$.broker: urls[1] has another password and vhost than urls[0]",
        ),
        (
            urls_toml("amqp://lw@127.0.0.1:5672/", "amqp://lw@192.0.2.2:5672/"),
            "$.broker: urls[1] is amqp:// to 192.0.2.2, which would send the broker password"
            " unencrypted: use amqps://, or set allow_plaintext = true",
        ),
    ],
    ids=["both", "empty", "scheme", "twice", "user", "password-vhost", "plaintext"],
)
def test_a_bad_node_list_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        broker(text)
    assert str(caught.value).startswith(f"lw.toml: {message}")


def test_plaintext_to_other_machines_needs_allow_plaintext_for_every_url() -> None:
    plain = ("amqp://lw@192.0.2.1:5672/", "amqp://lw@192.0.2.2:5672/")
    assert broker(f"{urls_toml(*plain)}\nallow_plaintext = true").nodes == plain
    with pytest.raises(ConfigError, match=r"urls\[0\] is amqp:// to 192\.0\.2\.1"):
        broker(urls_toml(*plain))


def test_the_password_file_gives_every_node_the_password(tmp_path: Path) -> None:
    secret = tmp_path / "broker.password"
    secret.write_text("p@ss\n")
    secret.chmod(0o600)
    cluster = broker(f'{urls_toml(*NODES)}\npassword_file = "{secret}"')
    assert broker_urls(cluster) == tuple(u.replace("lw@", "lw:p%40ss@") for u in NODES)
    assert broker_url(cluster) == broker_urls(cluster)[0]


def test_tls_files_need_every_node_on_amqps() -> None:
    mixed = broker(f'{urls_toml(NODES[0], "amqp://lw@127.0.0.1:5672/fleet")}\nca_file = "/x.pem"')
    with pytest.raises(ConfigError, match=r"^\$\.broker\.urls\[1\]: ca_file/cert_file/key_file"):
        tls_context(mixed)


def test_a_host_starts_at_a_node_of_its_own_name_and_then_tries_the_others() -> None:
    order = node_order(3, "web-01")
    assert sorted(order) == [0, 1, 2]
    assert order == tuple((order[0] + step) % 3 for step in range(3))
    assert node_order(3, "web-01") == order  # stable: every run of one host
    assert node_order(1, "web-01") == (0,)


def test_a_fleet_spreads_over_the_nodes() -> None:
    starts = Counter(node_order(3, f"web-{n:03d}")[0] for n in range(300))
    assert set(starts) == {0, 1, 2}
    assert min(starts.values()) > 70, starts  # 100 each, give or take


@pytest.mark.parametrize(
    ("nodes", "members"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 5), (6, 5), (9, 5)]
)
def test_queues_get_an_odd_number_of_members_up_to_five(nodes: int, members: int) -> None:
    assert topology.quorum_members(nodes) == members


def test_every_queue_of_a_cluster_names_its_members_and_one_node_none() -> None:
    cluster = topology.queue_specs((30, 120), nodes=3, lanes=2)
    assert {spec.name for spec in cluster} == {
        topology.ALERTS_QUEUE, topology.DIGEST_QUEUE, topology.DEAD_QUEUE,
        "loginwatch.retry.30s", "loginwatch.retry.120s",
        "loginwatch.alerts.0", "loginwatch.alerts.1",
    }  # fmt: skip
    for spec in cluster:
        assert spec.arguments["x-queue-type"] == "quorum"
        assert spec.arguments["x-quorum-initial-group-size"] == 3, spec.name
    # One node: the arguments an existing single-node install was declared with.
    for spec in topology.queue_specs((30, 120)):
        assert "x-quorum-initial-group-size" not in spec.arguments


def test_definitions_of_a_cluster_carry_the_members() -> None:
    limits = topology.policy_specs(10, 1000)
    document = definitions("fleet", (30,), limits, nodes=5)
    sizes = {q["name"]: q["arguments"]["x-quorum-initial-group-size"] for q in document["queues"]}
    assert set(sizes.values()) == {5} and len(sizes) == 4 + topology.DEFAULT_LANES


def test_host_add_prints_every_node_for_a_cluster() -> None:
    printed = host_config("web-1", tuple(u.replace("lw@", "host-web-1@") for u in NODES))
    config = parse_config(printed)
    assert config.broker.nodes == tuple(u.replace("lw@", "host-web-1@") for u in NODES)
    assert config.broker.ca_file == "/etc/loginwatch/ca.pem"
    assert config.host.name == "web-1"
    single = parse_config(host_config("web-1", ("amqps://host-web-1@mq1.example/",)))
    assert single.broker.url == "amqps://host-web-1@mq1.example/"


def test_a_node_cursor_starts_at_its_machine_and_moves_past_a_lost_node() -> None:
    cursor = NodeCursor(3, "db-1")
    start = node_order(3, "db-1")[0]
    assert cursor.order() == node_order(3, "db-1")
    cursor.lost(start)  # the connection to the first node was lost: the next one is tried first
    assert cursor.order()[0] == (start + 1) % 3
    cursor.worked(start)  # a later connection landed on it again: it stays first
    assert cursor.order()[0] == start
    assert NodeCursor(1, "any").order() == (0,)
