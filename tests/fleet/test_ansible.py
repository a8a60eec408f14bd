"""The Ansible role (deploy/ansible) against three hosts over real SSH, each a chroot with its
own sshd in a network namespace of its own (and a mount namespace of its own): two Debian 13
(python3 3.13) and one Debian 11 (3.9). The broker machine is this one: the role's delegated
tasks run `loginwatch host add` here, where rabbitmqctl reaches the broker, and the hosts reach
the broker through the namespaces' bridge.

The first run installs everything; the second reports changed=0 on every host; then a root
login over SSH on each host is mailed by a worker of this checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import fleet
from tests.support.chroot import REPO, unpacked
from tests.support.netns import Network
from tests.support.services import Vhost, missing, rabbitmqctl
from tests.support.worker_helpers import FreezableProxy

pytestmark = pytest.mark.timeout(1200)
FLEET_VENV = REPO / ".venv-fleet"
RELEASES = ("13", "13", "11")


def playbook(inventory: Path, work: Path) -> tuple[str, dict[str, int]]:
    """``ansible-playbook site.yml`` once; its output and each host's changed= count."""
    done = subprocess.run(
        [str(FLEET_VENV / "bin" / "ansible-playbook"), "-i", str(inventory),
         str(REPO / "deploy" / "ansible" / "site.yml")],
        capture_output=True, text=True, timeout=900, check=False, cwd=work,
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "deploy" / "ansible" / "roles"),
             "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
             "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", done.stdout, re.M))
    return done.stdout, {host: int(changed) for host, changed in recap.items()}


def ssh_root(address: str, key: Path) -> None:
    done = subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{address}", "true"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_role_installs_three_hosts_and_a_second_run_changes_nothing(
    vh: Vhost, tmp_path: Path
) -> None:
    if not (FLEET_VENV / "bin" / "ansible-playbook").exists():
        missing(".venv-fleet with ansible-core (make packages, or make fleet)")
    tag = uuid.uuid4().hex[:6]
    names = [f"lw{tag}-{n}" for n in ("a", "b", "old")]
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    secrets = tmp_path / "secrets"
    with ExitStack() as stack:
        net = stack.enter_context(Network(len(names)))
        proxy = FreezableProxy(5672, listen_host=net.address)  # the broker, as hosts reach it
        stack.callback(proxy.close)
        stack.callback(
            lambda: [rabbitmqctl("delete_user", f"host-{n}", check=False) for n in names]
        )
        hosts = []
        for name, release, machine in zip(names, RELEASES, net.machines, strict=True):
            debian = stack.enter_context(unpacked(release))
            fleet.serve_ssh(debian, tmp_path / f"{name}.sshd.log",
                            key.with_suffix(".pub").read_text(), machine.name)  # fmt: skip
            hosts.append((name, debian, machine))
        inventory = tmp_path / "inventory.ini"
        url = f"amqp://{net.address}:{proxy.port}/{quote(vh.name, safe='')}"
        lines = [
            "[central]",
            f"broker ansible_connection=local ansible_python_interpreter={sys.executable}",
            "[loginwatch_hosts]",
            *(f"{n} ansible_host={m.address} loginwatch_host_name={n}" for n, _, m in hosts),
            "[loginwatch_hosts:vars]",
            f"ansible_user=root\nansible_ssh_private_key_file={key}",
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
            "ansible_python_interpreter=/usr/bin/python3",
            f"loginwatch_central=broker\nloginwatch_central_command={REPO}/.venv/bin/loginwatch",
            f"loginwatch_secrets_dir={secrets}\nloginwatch_bundle={fleet.bundle()}",
            f"loginwatch_broker_url={url}\nloginwatch_vhost={vh.name}",
            "loginwatch_allow_plaintext=true",
        ]
        inventory.write_text("\n".join(lines) + "\n")
        (tmp_path / "tmp").mkdir()
        first, changed = playbook(inventory, tmp_path)
        assert all(changed[n] > 0 for n in names), (changed, first[-4000:])
        second, changed = playbook(inventory, tmp_path)
        assert {n: changed[n] for n in names} == dict.fromkeys(names, 0), second[-6000:]
        for name, debian, _machine in hosts:
            pam = debian.path("/etc/pam.d/sshd").read_text()
            assert "/usr/local/sbin/loginwatch-hook --config /etc/loginwatch/host.toml" in pam
            password = debian.path("/etc/loginwatch/host.password")
            assert password.read_text() == (secrets / f"{name}.password").read_text()
            assert oct(password.stat().st_mode & 0o777) == "0o600"
        with fleet.mailing_worker(vh, tmp_path) as smtp:
            for _name, _debian, machine in hosts:
                ssh_root(machine.address, key)
            # A login mail per host (and a logout mail where the stack lets the hook see
            # logouts: not Debian 11's, whose sshd stack reads ~/.pam_environment).
            logins = [f"Login root@{name} " for name in names]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                subjects = [str(m.message["Subject"]) for m in smtp.wait_for(0)]
                if all(any(login in s for s in subjects) for login in logins):
                    break
                time.sleep(0.2)
        for login in logins:
            assert any(login in s for s in subjects), (login, subjects)
