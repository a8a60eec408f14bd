"""Three hosts on one machine, installed as an operator would, alerting through one worker.

Each host is a mount + UTS namespace with its own hostname, its own /etc (with
/etc/pam.d/sshd as install-host.sh wrote it), its own sshd port and its own
broker user from `loginwatch host add`. Real ssh logins on each end as mails
naming the right host; an event one host forges about another ends in the dead
queue, and a forged user_id never gets past the broker.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from consumer.broker import host_users
from schemas import topology
from schemas.config import parse_config
from schemas.event import encode
from schemas.nodes import broker_url
from tests.support.deploy_host import HOOK_PATH, HOST_CONFIG, InstalledHost
from tests.support.factories import event
from tests.support.services import Vhost, fresh_vhost, rabbitmqctl
from tests.support.smtp_server import SmtpServer
from tests.support.sshd import TEST_USER, Sshd, require_root_namespaces
from tests.support.worker_helpers import loginwatch, running_worker, take_all, wait_depth
from tests.support.worker_helpers import write_config as central_config

pytestmark = [pytest.mark.integration, pytest.mark.sshd]


class HostSshd(Sshd):
    """sshd as ``tests.support.sshd.Sshd`` runs it, plus a UTS namespace with ``hostname``."""

    def __init__(self, hostname: str, host: InstalledHost) -> None:
        stack = (
            host.pam_file.read_text()
            .replace(HOOK_PATH, str(host.hook))
            .replace(HOST_CONFIG, str(host.config_path))
        )
        super().__init__(stack)
        script = self.ns.script

        def popen(command: str, **kwargs: Any) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                ["unshare", "-m", "-u", "--propagation", "private", "sh", "-c",
                 f"hostname {hostname}\n" + script(command)],
                **kwargs,
            )  # fmt: skip

        self.ns.popen = popen  # type: ignore[method-assign]


@pytest.fixture
def vh(vhost: Vhost) -> Iterator[Vhost]:
    with fresh_vhost("loginwatch-fleet") as mine:
        yield mine


def add_host(name: str, central: Path, secrets: Path) -> str:
    """`loginwatch host add NAME`; its printed config, pointing at the real password file."""
    added = loginwatch("host", "add", name, "--config", str(central), "--secrets-dir", str(secrets))
    assert added.returncode == 0, added.stderr
    return added.stdout.replace(host_users.HOST_PASSWORD_FILE, str(secrets / f"{name}.password"))


def test_three_hosts_each_alert_under_their_own_name_and_cannot_speak_for_another(
    vh: Vhost, tmp_path: Path
) -> None:
    require_root_namespaces()
    prefix = f"f{uuid.uuid4().hex[:5]}-"
    names = [prefix + short for short in ("alpha", "bravo", "charlie")]
    secrets = tmp_path / "secrets"
    try:
        with SmtpServer() as smtp, ExitStack() as stack:
            central = central_config(tmp_path / "central.toml", vh, smtp_port=smtp.port)
            text = central.read_text().replace(
                "retry_delays = [1, 2]", "retry_delays = [1, 2]\nrequire_user_id = true"
            )
            central.write_text(text.replace('mode = "immediate"', 'kinds = ["login"]'))
            assert loginwatch("setup", "--config", str(central)).returncode == 0
            configs = {}
            for name in names:
                printed = add_host(name, central, secrets)
                # No [host] name: each hook names its host by its UTS hostname.
                printed = printed.replace(f'[host]\nname = "{name}"\n', "")
                configs[name] = printed + f'[spool]\ndir = "{tmp_path / name / "spool"}"\n'
            forge(configs[names[0]], about=names[1])
            worker = stack.enter_context(running_worker(central, tmp_path / "worker.log"))
            assert wait_depth(vh, topology.DEAD_QUEUE, 1) == 1, worker.text()
            for name in names:
                host = InstalledHost(tmp_path / name, configs[name])
                sshd = stack.enter_context(HostSshd(name, host))
                sshd.ssh(TEST_USER, "true")
            mails = smtp.wait_for(3, timeout=30)
        [dead] = take_all(vh, topology.DEAD_QUEUE)
    finally:
        for name in names:
            rabbitmqctl("delete_user", topology.host_user(name), check=False)
    subjects = [str(m.message["Subject"]) for m in mails]
    for name in names:
        [subject] = [s for s in subjects if f"{TEST_USER}@{name} " in s]
        assert "127.0.0.1" in subject
    assert len(subjects) == 3, subjects
    # The worker moved it under its own user, carrying the sender's along.
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in dead.headers.items()}
    assert headers[topology.HEADER_USER_ID] == topology.host_user(names[0])
    assert names[1] in headers[topology.HEADER_REASON], headers


def forge(config_text: str, about: str) -> None:
    """As the first host, publish a login naming ``about``; a forged user_id first.

    The broker refuses the user_id of another host outright; the event that names
    another host under the sender's own user_id is accepted by the broker and left
    for the worker to refuse.
    """
    params = pika.URLParameters(broker_url(parse_config(config_text).broker))
    own_user = str(params.credentials.username)
    body = encode(event(id=os.urandom(16), host=about))
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(user_id=topology.host_user(about), delivery_mode=2)
        key = topology.routing_key(own_user)  # the only keys its topic permission admits
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.basic_publish(topology.EXCHANGE, key, body, properties, mandatory=True)
        assert refused.value.reply_code == 406
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(user_id=own_user, delivery_mode=2)
        channel.basic_publish(topology.EXCHANGE, key, body, properties, mandatory=True)
