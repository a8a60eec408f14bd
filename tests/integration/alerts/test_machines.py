"""Two central machines (network namespaces) share one PostgreSQL store.

Each runs ``loginwatch worker`` and reaches a private RabbitMQ node (AMQPS, a throwaway CA,
client certificates), a private PostgreSQL (password from ``[store] password_file``) and an
SMTP server over its veth link (tests/support/machines.py; the chaos scenario ``machine``
runs the plain-AMQP opt-in). A mail sent by one machine is in the shared sent log: the
same event redelivered to the other machine is not mailed again.
"""

from __future__ import annotations

import sys

import pytest

from tests.support.chaos_support import publish_events
from tests.support.factories import event
from tests.support.machines import Rig
from tests.support.netns import ip

pytestmark = pytest.mark.timeout(240)


def test_two_machines_mail_once_each_through_the_shared_store() -> None:
    first, second = event(host="web-01", tty="m1"), event(host="web-02", tty="m2")
    with Rig(2, tls=True) as rig:
        a, b = rig.machines
        rig.start(a, "worker", "worker-a")
        rig.wait_log("worker-a", r"consuming loginwatch\.alerts")
        publish_events(rig.amqp_url, [first])
        assert len(rig.smtp.wait_for(1, timeout=30)) == 1
        rig.start(b, "worker", "worker-b")
        rig.wait_log("worker-b", r"consuming loginwatch\.alerts")
        a.kill_all()  # machine A is gone: what follows is B's
        publish_events(rig.amqp_url, [second, first])  # `first` again: a redelivery
        rig.wait_log("worker-b", rf"{first.id_hex} .*already sent \(redelivery\)")
        mails = rig.smtp.wait_for(2, timeout=30)
        b_log = rig.log("worker-b").read_text()
        tag = rig.net.tag
        # A machine reaches our services on the bridge, not this host's loopback services.
        probe = "import socket; socket.create_connection(('127.0.0.1', 5672), 1)"
        assert b.run(sys.executable, "-c", probe).returncode != 0
    assert [m.message["X-Loginwatch-Event"] for m in mails] == [first.id_hex, second.id_hex]
    assert f"{second.id_hex} " in b_log
    assert tag not in ip("netns", "list").stdout + ip("link").stdout  # nothing left behind
