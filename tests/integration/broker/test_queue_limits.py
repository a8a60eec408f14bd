"""Queue limits: a RabbitMQ policy that reaches existing queues, and that cannot stop alerts.

Both work queues bind ``#``: a publish routed to both is nacked when either refuses it.
So the digest queue drops its oldest at its limit (a stalled scheduler costs digest
entries, dead-lettered with reason maxlen) and only the alerts queue refuses — then the
hosts keep the events in their spools until a worker takes alerts again.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pika.exceptions
import pytest

from consumer.broker import queue_limits
from consumer.broker import rabbitmqctl as rabbitmqctl_module
from consumer.broker.connection import Broker
from consumer.broker.definitions_file import definitions
from schemas import topology
from schemas.config import BrokerConfig
from schemas.errors import BrokerError
from tests.support.hookrun import HOOK, PAM_ENV, run_hook, spooled, wait_for
from tests.support.hookrun import write_config as host_config
from tests.support.services import Vhost, rabbitmqctl
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import (
    alerts_depth,
    depth,
    loginwatch,
    publish,
    running_worker,
    take_all,
    wait_depth,
    write_config,
)

LIMITS = topology.policy_specs(100_000, 256 << 20)


# --- the policies as data -----------------------------------------------------


@pytest.mark.parametrize("delays", [topology.RETRY_DELAYS_S, (5, 77, 86400)])
def test_every_queue_gets_exactly_one_policy(delays: tuple[int, ...]) -> None:
    for spec in topology.queue_specs(delays):
        matching = [p.name for p in LIMITS if re.search(p.pattern, spec.name)]
        assert len(matching) == 1, (spec.name, matching)
    assert not any(re.search(p.pattern, "loginwatch.alertsX") for p in LIMITS)
    assert not any(re.search(p.pattern, "other.loginwatch.dead") for p in LIMITS)


def test_only_the_alerts_and_retry_queues_refuse_at_their_limit() -> None:
    overflow = {p.name: p.definition["overflow"] for p in LIMITS}
    assert overflow == {
        "loginwatch-alerts": "reject-publish",
        "loginwatch-retry": "reject-publish",
        "loginwatch-digest": "drop-head",
        "loginwatch-dead": "drop-head",
    }


def test_definitions_carry_the_limits() -> None:
    doc = definitions("lw", topology.RETRY_DELAYS_S, topology.policy_specs(7, 4096))
    assert {p["name"] for p in doc["policies"]} == {p.name for p in LIMITS}
    for policy in doc["policies"]:
        assert policy["vhost"] == "lw" and policy["apply-to"] == "queues"
        assert policy["definition"]["max-length"] == 7
        assert policy["definition"]["max-length-bytes"] == 4096


def test_the_definitions_command_uses_the_configured_limits(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[broker]\nqueue_max_length = 500\nqueue_max_bytes = 65536\n")
    out = loginwatch("definitions", "--config", str(config))
    assert out.returncode == 0, out.stderr
    [digest] = [p for p in json.loads(out.stdout)["policies"] if p["name"] == "loginwatch-digest"]
    assert digest["definition"] == {
        "max-length": 500,
        "max-length-bytes": 65536,
        "overflow": "drop-head",
        "delivery-limit": topology.DELIVERY_LIMIT,
    }


def test_policies_are_never_set_on_a_node_that_is_not_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another node on this machine (rabbitmqctl's) must not get our policies."""
    calls: list[tuple[str, ...]] = []

    def fake_run(*args: str, stdin: str | None = None) -> str:
        calls.append(args)
        return json.dumps({"cluster_name": "rabbit@this-machine"})

    monkeypatch.setattr(rabbitmqctl_module, "run", fake_run)
    with pytest.raises(BrokerError, match="manages 'rabbit@this-machine', the broker is 'x@y'"):
        queue_limits.apply("/", LIMITS, "x@y")
    assert [c[0] for c in calls] == ["cluster_status"]


# --- on the real broker ---------------------------------------------------------


def _policies_of(vhost: Vhost) -> dict[str, str]:
    rows: list[dict[str, Any]] = json.loads(
        rabbitmqctl("list_queues", "-p", vhost.name, "name", "policy", "--formatter", "json").stdout
    )
    return {row["name"]: row["policy"] for row in rows}


def _central(tmp_path: Path, vh: Vhost, smtp_port: int, *broker_lines: str) -> Path:
    config = write_config(tmp_path / "central.toml", vh, smtp_port=smtp_port)
    text = config.read_text().replace("[broker]\n", "[broker]\n" + "".join(broker_lines), 1)
    config.write_text(text)
    return config


@pytest.mark.integration
def test_setup_puts_the_limits_on_queues_that_exist_already(vh: Vhost, tmp_path: Path) -> None:
    # An install made before the limits: the queues as the old setup declared them, in use.
    with Broker(BrokerConfig(url=vh.url())) as broker:
        broker.declare(topology.queue_specs((1, 2)))
    for n in range(2):
        publish(vh, b"event %d" % n)
    assert set(_policies_of(vh).values()) == {""}

    config = _central(tmp_path, vh, 2525)
    result = loginwatch("setup", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "applied policies loginwatch-alerts, loginwatch-digest" in result.stdout
    assert _policies_of(vh) == {
        topology.ALERTS_QUEUE: "loginwatch-alerts",
        **{topology.lane_queue(i): "loginwatch-alerts" for i in range(topology.DEFAULT_LANES)},
        topology.DIGEST_QUEUE: "loginwatch-digest",
        topology.retry_queue(1): "loginwatch-retry",
        topology.retry_queue(2): "loginwatch-retry",
        topology.DEAD_QUEUE: "loginwatch-dead",
    }
    assert depth(vh, topology.ALERTS_QUEUE) == 2, "nothing lost"
    assert depth(vh, topology.DIGEST_QUEUE) == 2
    # Rerun with other limits: the same policies, changed in place.
    config.write_text(config.read_text().replace("[broker]\n", "[broker]\nqueue_max_length = 9\n"))
    assert loginwatch("setup", "--config", str(config)).returncode == 0
    listed = rabbitmqctl("list_policies", "-p", vh.name, "--formatter", "json").stdout
    digest = [p for p in json.loads(listed) if p["name"] == "loginwatch-digest"]
    assert json.loads(digest[0]["definition"])["max-length"] == 9


@pytest.mark.integration
def test_a_stalled_digest_scheduler_cannot_block_alerts(vh: Vhost, tmp_path: Path) -> None:
    """No scheduler consumes the digest queue (limit 3); six logins are still confirmed
    by the broker and mailed; the digest keeps the newest three, the rest are dead."""
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    hook = host_config(host_dir, vh.url(), host="web-limits")
    with SmtpServer() as smtp:
        config = _central(tmp_path, vh, smtp.port, "queue_max_length = 3\n")
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"):
            for n in range(6):
                run = run_hook(hook, env={**PAM_ENV, "PAM_USER": f"user{n}"})
                assert run.returncode == 0, run.stderr
                # The broker confirmed the publish: the hook's publisher deleted the record.
                assert wait_for(lambda: not spooled(host_dir)), f"login {n} not confirmed"
            mails = smtp.wait_for(6, timeout=30)
    users = sorted(re.findall(r"(\S+)@web-limits", m.message["Subject"])[0] for m in mails)
    assert users == [f"user{n}" for n in range(6)]
    assert wait_depth(vh, topology.DIGEST_QUEUE, 3) == 3
    listed = loginwatch("dead", "list", "--config", str(config))
    assert listed.stdout.count("broker: maxlen in loginwatch.digest") == 3, listed.stdout
    dead = take_all(vh, topology.DEAD_QUEUE)
    assert len(dead) == 3
    assert {d.headers["x-death"][0]["reason"] for d in dead} == {"maxlen"}
    assert {d.headers["x-death"][0]["queue"] for d in dead} == {topology.DIGEST_QUEUE}


@pytest.mark.integration
def test_a_full_alerts_queue_leaves_the_events_on_the_host_until_a_worker_runs(
    vh: Vhost, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    hook = host_config(host_dir, vh.url(), host="web-full")
    with SmtpServer() as smtp:
        config = _central(tmp_path, vh, smtp.port, "queue_max_length = 2\n")
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        for n in range(5):  # no worker: the alerts queue fills
            assert run_hook(hook, env={**PAM_ENV, "PAM_USER": f"user{n}"}).returncode == 0
        refused = flush(hook)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "the broker nacked the event" in refused.stderr
        assert spooled(host_dir), "the refused events stay on the host"
        assert alerts_depth(vh) <= 3
        with running_worker(config, tmp_path / "worker.log"):
            # What the flush timer does: the worker makes room, the host's events go out.
            assert wait_for(lambda: flush(hook).returncode == 0, timeout=60, step=0.5)
            mails = smtp.wait_for(5, timeout=30)
    users = sorted(re.findall(r"(\S+)@web-full", m.message["Subject"])[0] for m in mails)
    assert users == [f"user{n}" for n in range(5)]


def flush(config: Path) -> subprocess.CompletedProcess[str]:
    """``loginwatch-hook flush``, waiting for a hook's publisher that holds the spool."""
    return subprocess.run(
        [HOOK, "--config", str(config), "flush"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_why_the_digest_queue_must_not_refuse(vh: Vhost, tmp_path: Path) -> None:
    """The design this replaces: a digest queue at its limit with reject-publish (what its
    x-overflow argument says) nacks every host's publish, although the alerts queue had room."""
    config = _central(tmp_path, vh, 2525)  # the default limits: the alerts queue has room
    assert loginwatch("setup", "--config", str(config)).returncode == 0
    refusing = json.dumps({"max-length": 2, "overflow": "reject-publish"})
    rabbitmqctl(
        "set_policy", "-p", vh.name, "--priority", "20", "--apply-to", "queues",
        "digest-refuses", r"^loginwatch\.digest$", refusing,
    )  # fmt: skip
    outcomes = []
    for n in range(5):
        try:
            publish(vh, b"event %d" % n)
            outcomes.append("confirmed")
        except pika.exceptions.NackError:
            outcomes.append("nacked")
    assert outcomes[-1] == "nacked"
    assert depth(vh, topology.ALERTS_QUEUE) == 5, "the alerts queue took every one of them"
