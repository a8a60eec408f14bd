"""The broker's largest message (issue 17, finding 6): ``install-central.sh`` writes
``/etc/rabbitmq/conf.d/60-loginwatch.conf`` from deploy/rabbitmq/loginwatch.conf, and a
RabbitMQ node that reads it refuses a body past ``BROKER_MAX_MESSAGE``.

Before, ``max_message_size`` stayed at RabbitMQ's 128 MiB: three 30 MiB events took a
worker from 51 to 141 MB only to refuse them. A private node (tests/support/private_node.py)
starts with the installed file as its conf.d, exactly as the Debian package's node reads
``/etc/rabbitmq/conf.d/*.conf``; the shared node's config is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from schemas.event import BROKER_MAX_MESSAGE, MAX_BODY
from tests.support.deploy_host import REPO, VENV, run_install
from tests.support.private_node import PrivateNode
from tests.support.rabbit_node import SERVER, free_port
from tests.support.services import missing

INSTALL_CENTRAL = REPO / "deploy" / "install-central.sh"
CONF = "etc/rabbitmq/conf.d/60-loginwatch.conf"


class ConfdNode(PrivateNode):
    """A private node on loopback that reads ``confd/*.conf`` after its own rabbitmq.conf."""

    def __init__(self, confd: Path) -> None:
        self.port = free_port()
        super().__init__(
            Path(tempfile.mkdtemp(prefix="loginwatch-confd-")),
            f"lwconfd-{uuid.uuid4().hex[:8]}@localhost",
            self.port,
        )
        self.confd = confd
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
        )

    def env(self) -> dict[str, str]:
        return {**super().env(), "RABBITMQ_CONFIG_FILES": str(self.confd / "*.conf")}


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A central machine installed into a --root tree."""
    root = Path(tempfile.mkdtemp(prefix="lw-central-"))
    run_install("--root", root, "--venv", VENV, script=INSTALL_CENTRAL)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def node(installed: Path) -> Iterator[ConfdNode]:
    if not os.path.exists(SERVER) or os.geteuid() != 0:
        missing("root and rabbitmq-server (a private node)")
    started = ConfdNode(installed / CONF.rsplit("/", 1)[0])
    try:
        started.launch()
        started.wait(120, "private node")
        yield started
    finally:
        started.stop()
        shutil.rmtree(started.dir, ignore_errors=True)


def test_the_installed_file_is_the_kit_s_and_names_the_limit_the_code_knows(
    installed: Path,
) -> None:
    conf = installed / CONF
    assert conf.read_bytes() == (REPO / "deploy/rabbitmq/loginwatch.conf").read_bytes()
    assert oct(conf.stat().st_mode & 0o777) == "0o644"
    [value] = re.findall(r"^max_message_size = (\d+)$", conf.read_text(), re.M)
    assert int(value) == BROKER_MAX_MESSAGE == MAX_BODY + 8192


def publish(node: ConfdNode, size: int) -> None:
    """One confirmed, mandatory publish of a ``size``-byte body to the default exchange."""
    url = f"amqp://guest:guest@127.0.0.1:{node.port}/%2F"
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare("sizes", durable=False)
        channel.confirm_delivery()
        channel.basic_publish("", "sizes", b"x" * size, mandatory=True)


def test_the_node_refuses_a_message_past_the_limit(node: ConfdNode) -> None:
    publish(node, MAX_BODY)  # our largest body: confirmed
    publish(node, BROKER_MAX_MESSAGE)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        publish(node, BROKER_MAX_MESSAGE + 1)
    assert refused.value.reply_code == 406  # PRECONDITION_FAILED
    assert f"larger than configured max size {BROKER_MAX_MESSAGE}" in refused.value.reply_text
