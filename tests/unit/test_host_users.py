"""A broker user as ``host add`` gives it to RabbitMQ: one definitions document (unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.broker import host_users, rabbitmqctl, topic_keys
from schemas import topology
from schemas.errors import BrokerError


def test_the_password_hash_is_rabbitmqs_documented_example() -> None:
    # RabbitMQ's docs (Credentials and Passwords): "test12" with salt 908D C60A.
    hashed = host_users.password_hash("test12", bytes.fromhex("908DC60A"))
    assert hashed == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    assert host_users.password_hash("test12") != host_users.password_hash("test12")  # salted


def test_host_add_is_one_import_with_the_user_its_permissions_limits_and_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[tuple[str, ...], str | None]] = []

    def run(*args: str, stdin: str | None = None) -> str:
        calls.append((args, stdin))
        return "[]"

    monkeypatch.setattr(rabbitmqctl, "run", run)
    secret = tmp_path / "web-1.password"
    host_users.add("web-1", "fleet", secret)
    assert [args[0] for args, _ in calls] == ["list_users", "import_definitions"]
    document = json.loads(calls[1][1] or "")
    [user] = document["users"]
    assert user["name"] == "host-web-1" and user["limits"] == host_users.HOST_LIMITS
    assert secret.read_text().strip() not in (calls[1][1] or "")  # only its salted hash
    assert document["permissions"] == [{"user": "host-web-1", "vhost": "fleet",
                                        **topology.HOST_PERMISSIONS}]  # fmt: skip
    [keys] = document["topic_permissions"]
    assert keys["write"] == topology.topic_write_pattern("host-web-1")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"


def test_a_failed_import_leaves_no_user_and_no_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deleted: list[str] = []

    def run(*args: str, stdin: str | None = None) -> str:
        if args[0] == "import_definitions":
            raise BrokerError("rabbitmqctl import_definitions: Virtual host 'x' does not exist")
        if args[0] == "delete_user":
            deleted.append(args[1])
        return "[]"

    monkeypatch.setattr(rabbitmqctl, "run", run)
    secret = tmp_path / "web-1.password"
    with pytest.raises(BrokerError, match="does not exist"):
        host_users.add("web-1", "x", secret)
    assert deleted == ["host-web-1"] and not secret.exists()


def test_setup_reads_the_vhosts_permissions_once_for_routing_keys_and_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def run(*args: str, stdin: str | None = None) -> str:
        calls.append(args[0])
        return "[]"

    monkeypatch.setattr(rabbitmqctl, "run", run)
    rows = [{"user": "guest", **topology.HOST_PERMISSIONS},
            {"user": "host-web-1", **topology.HOST_PERMISSIONS},
            {"user": "relay", **topology.HOST_PERMISSIONS}]  # fmt: skip
    assert topic_keys.speakers(rows, relays=["relay"]) == ["host-web-1", "relay"]
    assert host_users.limit_all("fleet", rows) == ["host-web-1"]  # listed without limits
    assert calls == ["list_user_limits", "set_user_limits"]  # no second list_permissions
