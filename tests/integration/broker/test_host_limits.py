"""Limits on every host credential (issue 17, finding 6), against the real broker.

Before: a host user had no limits (``rabbitmqctl list_user_limits`` showed ``{}``), so one
compromised host could open connections and channels (~20 KB of broker memory each) until
the node's memory alarm blocked every publisher of the fleet. Now ``host add`` sets them,
``setup`` gives them to host users made before, and ``host list`` and ``check-config
--broker`` flag a host user without them. The broker enforces them: the ninth connection
is refused.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from consumer.broker.host_users import HOST_LIMITS
from consumer.cli import main
from schemas import topology
from tests.support.services import Vhost, rabbitmqctl
from tests.support.worker_helpers import write_config


def limits_of(user: str) -> dict[str, int]:
    """``rabbitmqctl list_user_limits --user USER``, as an operator would ask."""
    shown = rabbitmqctl("list_user_limits", "--user", user, "--formatter", "json").stdout
    return dict(json.loads(json.loads(shown)["message"]))


class Central:
    """A vhost set up for loginwatch, and the host users a test made on it (deleted after)."""

    def __init__(self, vh: Vhost, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.vh = vh
        self.capsys = capsys
        self.config = write_config(tmp_path / "central.toml", vh)
        self.secrets = tmp_path / "hosts"
        self.prefix = f"l{uuid.uuid4().hex[:6]}-"
        self.users: list[str] = []
        code, shown = self.run("setup")
        assert code == 0, shown

    def run(self, *args: str) -> tuple[int, str]:
        """``loginwatch ARGS --config …``, as the console script runs it (in this process)."""
        code = main([*args, "--config", str(self.config)])
        shown = self.capsys.readouterr()
        return code, shown.out + shown.err

    def add(self, short: str) -> str:
        name = self.prefix + short
        self.users.append(topology.host_user(name))
        code, shown = self.run("host", "add", name, "--secrets-dir", str(self.secrets))
        assert code == 0, shown
        return name

    def add_as_before(self, short: str) -> str:
        """A host user as ``host add`` made it before limits: user and permissions only."""
        user = topology.host_user(self.prefix + short)
        self.users.append(user)
        rabbitmqctl("add_user", user, "not-used")
        perms = topology.HOST_PERMISSIONS
        rabbitmqctl("set_permissions", "-p", self.vh.name, user,
                    perms["configure"], perms["write"], perms["read"])  # fmt: skip
        return user

    def cleanup(self) -> None:
        for user in self.users:
            rabbitmqctl("delete_user", user, check=False)


@pytest.fixture
def central(vh: Vhost, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Central]:
    made = Central(vh, tmp_path, capsys)
    yield made
    made.cleanup()


def test_host_add_limits_connections_and_channels(central: Central) -> None:
    name = central.add("web-1")
    user = topology.host_user(name)
    assert limits_of(user) == {"max-connections": 8, "max-channels": 16}
    password = (central.secrets / f"{name}.password").read_text().strip()
    params = pika.URLParameters(central.vh.url(user, password))
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(pika.BlockingConnection(params)) for _ in range(8)]
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(params)  # the broker refuses the ninth
        channels = [opened[n % 8].channel() for n in range(16)]
        assert len(channels) == 16
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as refused:
            opened[0].channel()  # and the seventeenth channel
        assert refused.value.reply_code == 530
        assert "maximum allowed user limit of (16)" in refused.value.reply_text


def test_setup_limits_host_users_made_before_and_list_and_check_config_flag_them(
    central: Central,
) -> None:
    old = central.add_as_before("old-1")
    assert limits_of(old) == {}
    code, listed = central.run("host", "list")
    assert code == 0
    assert f"{old}\twrite-only\tNO LIMITS\t" in listed
    assert "1 host user(s) without connection/channel limits" in listed
    code, checked = central.run("check-config", "--broker")
    assert code == 1
    assert f"1 host user(s) WITHOUT connection/channel limits: {old};" in checked

    code, done = central.run("setup")
    assert code == 0, done
    assert f"limited 1 host user(s) to max-connections 8, max-channels 16: {old}" in done
    assert limits_of(old) == HOST_LIMITS
    code, checked = central.run("check-config", "--broker")
    assert code == 0, checked
    assert "every host user has its connection and channel limits" in checked
