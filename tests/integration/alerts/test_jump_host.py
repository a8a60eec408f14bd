"""A real hop through a bastion: ``ssh -J`` from a laptop, through real sshd instances with
our hook in their PAM stacks, each in a network namespace of its own.

    laptop (this process, the bridge's address)
      └─ outer network ── bastion (eth0: outer, eth1: inner)   sshd + hook
                            └─ inner network ── db-1 (eth1)    sshd + hook

Both hooks publish to the shared broker (through a relay on the bridge's address: the
broker listens on loopback only); the bastion's ``loginwatch-hook flush`` sends a heartbeat
listing both its addresses. The real worker then mails db-1's login as a hop, naming the
laptop and the chain, and first-seen asks about the laptop, not the bastion.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.hookrun import HOOK
from tests.support.hookrun import write_config as host_config
from tests.support.netns import IP, Machine, Network, _free_subnet, ip
from tests.support.services import AMQP_HOST, AMQP_PORT, Vhost
from tests.support.smtp_server import SmtpServer
from tests.support.sshd import ACCOUNT_STACK, AUTH_STACK, SESSION_STACK, TEST_USER, Sshd, hook_line
from tests.support.tcp_relay import TcpRelay
from tests.support.worker_helpers import central_sections, loginwatch, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.sshd, pytest.mark.timeout(120)]

ROUTE = """
[[route]]
to = ["ops@test.example"]
"""


def inner_link(net: Network, bastion: Machine, db1: Machine) -> tuple[str, str]:
    """A veth pair ``eth1``–``eth1`` between the two, on a /24 of its own: (bastion's inner
    address, db-1's)."""
    subnet = _free_subnet()
    hosts = list(subnet.hosts())
    left, right = f"{net.tag}i0", f"{net.tag}i1"
    ip("link", "add", left, "type", "veth", "peer", "name", right)
    try:
        for name, machine in ((left, bastion), (right, db1)):
            ip("link", "set", name, "netns", machine.name, "name", "eth1")
    except RuntimeError:
        ip("link", "del", left, check=False)  # else the pair goes with the namespaces
        raise
    for machine, address in ((bastion, hosts[0]), (db1, hosts[1])):
        inside = ("netns", "exec", machine.name, IP)
        ip(*inside, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth1")
        ip(*inside, "link", "set", "eth1", "up")
    return str(hosts[0]), str(hosts[1])


def start_sshd(machine: Machine, stack: str, key: Path, checked_at: str) -> Sshd:
    """A test sshd (tests/support/sshd.py) on port 22 of ``machine``, every address, which
    accepts ``key``; waits until ``checked_at``:22 answers."""
    sshd = Sshd(stack)
    config = sshd.config.read_text().replace(f"Port {sshd.port}\n", "Port 22\n")
    sshd.config.write_text(config.replace("ListenAddress 127.0.0.1", "ListenAddress 0.0.0.0"))
    (sshd.root / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    script = sshd.ns.script(f"exec /usr/sbin/sshd -D -e -f {sshd.config}")
    machine.popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                  log=sshd.log)  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(OSError), socket.create_connection((checked_at, 22), 0.5):
            return sshd
        assert time.monotonic() < deadline, f"sshd did not start: {sshd.tail()}"
        time.sleep(0.1)


def client_config(directory: Path, key: Path, bastion: str, db1: str) -> Path:
    """The laptop's ssh config: the two names, our key, no known_hosts (fresh host keys);
    ``ssh -J`` passes ``-F`` on to the jump connection."""
    path = directory / "ssh_config"
    path.write_text(
        f"Host bastion\n  HostName {bastion}\nHost db-1\n  HostName {db1}\nHost *\n"
        f"  User {TEST_USER}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  BatchMode yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        "  ConnectTimeout 10\n"
    )
    return path


def body(message: object) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[attr-defined,no-any-return]


def noted_addresses(store: Path) -> set[str]:
    if not store.exists():
        return set()
    with contextlib.closing(sqlite3.connect(store)) as db:
        return {str(r[0]) for r in db.execute("SELECT address FROM host_address").fetchall()}


def test_ssh_through_a_real_bastion_names_the_laptop_and_the_chain(
    vh: Vhost, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    with contextlib.ExitStack() as stack:
        net = stack.enter_context(Network(2))
        bastion, db1 = net.machines
        bastion_inner, db1_inner = inner_link(net, bastion, db1)
        laptop = net.address  # this process reaches the bastion from the bridge's address
        relay = stack.enter_context(TcpRelay(net.address, (AMQP_HOST, AMQP_PORT)))
        url = vh.url().replace(f"@{AMQP_HOST}:{AMQP_PORT}/", f"@{net.address}:{relay.port}/")
        key = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)  # fmt: skip
        hosts = {}
        for name, machine, reach in (("bastion", bastion, bastion.address),
                                     ("db-1", db1, db1.address)):  # fmt: skip
            directory = tmp_path / name
            directory.mkdir()
            config = host_config(directory, url, host=name,
                                 host_keys=('wtmp = ""', 'wtmpdb = ""'))  # fmt: skip
            # Off loopback amqp:// only by the explicit opt-in (the relay is a test device).
            text = config.read_text().replace("[broker]\n", "[broker]\nallow_plaintext = true\n")
            config.write_text(text)
            line = hook_line(HOOK, config).replace("pam_exec.so", "pam_exec.so type=open_session")
            sshd = start_sshd(machine, AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + line, key,
                              reach)  # fmt: skip
            stack.callback(sshd.__exit__)  # its files; Network kills the process
            hosts[name] = (config, sshd)
        smtp = stack.enter_context(SmtpServer())
        central = tmp_path / "central.toml"
        central.write_text(central_sections(vh.url(), smtp.port, tmp_path, "1, 2") + ROUTE)
        assert loginwatch("setup", "--config", str(central)).returncode == 0
        stack.enter_context(running_worker(central, tmp_path / "worker.log"))
        # The bastion's flush timer: a heartbeat listing its outer and inner addresses.
        flushed = bastion.run(HOOK, "--config", str(hosts["bastion"][0]), "flush")
        assert flushed.returncode == 0, flushed.stdout + flushed.stderr
        deadline = time.monotonic() + 30
        while bastion_inner not in noted_addresses(store):
            assert time.monotonic() < deadline, noted_addresses(store)
            time.sleep(0.2)
        ssh_config = client_config(tmp_path, key, bastion.address, db1_inner)
        hop = subprocess.run(
            ["ssh", "-F", str(ssh_config), "-J", f"{TEST_USER}@bastion", f"{TEST_USER}@db-1",
             "true"], capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        tails = hosts["bastion"][1].tail() + hosts["db-1"][1].tail()
        assert hop.returncode == 0, hop.stderr + tails
        mails = smtp.wait_for(2, timeout=30)
    subjects = sorted(str(m.message["Subject"]) for m in mails)
    [db1_mail] = [m.message for m in mails if f"{TEST_USER}@db-1" in str(m.message["Subject"])]
    assert str(db1_mail["Subject"]).startswith(
        f"VIA JUMP HOST: Login {TEST_USER}@db-1 from {bastion_inner}"), subjects  # fmt: skip
    text = body(db1_mail)
    assert f"*** Logged in through a jump host: {laptop} → bastion → db-1" in text, text
    assert f"the original client is {laptop}" in text
    assert "FIRST TIME" in text  # the laptop is new to db-1 (not the bastion's address)
    [bastion_mail] = [m.message for m in mails if "@bastion" in str(m.message["Subject"])]
    assert f"Login {TEST_USER}@bastion from {laptop}" in str(bastion_mail["Subject"]), subjects
    assert "through a jump host" not in body(bastion_mail)
