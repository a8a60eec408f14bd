"""docs/install.md's Fleet install, run live as written, in a mount namespace (issue 10.3).

--root trees skip what only a live install does: useradd, chgrp/chown to
`loginwatch`, `runuser -u loginwatch`. Here /etc, /opt, /usr/local and /var are
throwaway copies bind-mounted in a namespace of the script's own, so the
docs/install.md's commands run unchanged, as root, against the real broker (a vhost
and users of this test's own) and a real SMTP server: the central side, then
the same machine as an SSH host, a login the hook publishes, and the host's
uninstall, after which the central side still works. Only `systemctl` is left
out (/run/systemd hidden where systemd runs), and the `[broker] url` / `[smtp] port` edit the page
leaves to the operator is a sed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.deploy_host import REPO
from tests.support.services import rabbitmqctl
from tests.support.smtp_server import SmtpServer
from tests.support.sshd import require_root_namespaces

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# What docs/install.md says, in its order, with NAME for this test's unique names.
SCRIPT = """
sh deploy/install-central.sh --python /usr/bin/python3
sed -i '0,/^url = .*/s##url = "amqp://NAME@127.0.0.1:5672/NAME"#; s/^port = 25$/port = SMTP/' \
    /etc/loginwatch/loginwatch.toml
loginwatch broker-user add
loginwatch setup
loginwatch check-config --broker
runuser -u loginwatch -- loginwatch send-test --to you@example.org
loginwatch host add NAME-web-1 > /tmp/NAME-web-1.toml
(umask 077; cp /etc/loginwatch/hosts/NAME-web-1.password /tmp/NAME-web-1.password)
sh deploy/install-host.sh --config /tmp/NAME-web-1.toml --password-file /tmp/NAME-web-1.password
env -i PAM_TYPE=open_session PAM_USER=alice PAM_RHOST=192.0.2.7 PAM_SERVICE=sshd PAM_TTY=ssh \
    SSH_CONNECTION='192.0.2.7 5555 127.0.0.1 22' \
    /usr/local/sbin/loginwatch-hook --config /etc/loginwatch/host.toml
# The hook's detached publisher may still be at it: flush until the spool is empty (bounded).
for i in $(seq 50); do
    /usr/local/sbin/loginwatch-hook --config /etc/loginwatch/host.toml flush && break
    sleep 0.2
done
stat -c '%n %U:%G %a' /etc/loginwatch /etc/loginwatch/* /var/lib/loginwatch /var/lib/loginwatch-host
sh deploy/install-host.sh --uninstall
runuser -u loginwatch -- loginwatch check-config --broker
ls /opt
"""


def test_the_readme_fleet_install_runs_as_written(tmp_path: Path) -> None:
    require_root_namespaces()
    if not Path("/usr/bin/python3").exists() or shutil.which("runuser") is None:
        pytest.skip("needs /usr/bin/python3 (with venv) and runuser")
    name = f"lwlive-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "machine"
    for sub in ("opt", "usrlocal/bin", "usrlocal/sbin", "var/lib/rabbitmq", "var/log", "var/mail"):
        (work / sub).mkdir(parents=True)
    (work / "var/run").symlink_to("/run")
    shutil.copytree("/etc", work / "etc", symlinks=True)
    rabbitmqctl("add_vhost", name)
    try:
        with SmtpServer() as smtp:
            script = SCRIPT.replace("NAME", name).replace("SMTP", str(smtp.port))
            # rabbitmqctl needs the broker's cookie from the real /var/lib/rabbitmq.
            mounts = (
                f"mount --bind /var/lib/rabbitmq {work}/var/lib/rabbitmq\n"
                f"mount --bind {work}/etc /etc\nmount --bind {work}/opt /opt\n"
                f"mount --bind {work}/usrlocal /usr/local\nmount --rbind {work}/var /var\n"
                # On a machine systemd runs, the scripts would ask it to enable the units of
                # the throwaway /etc, which it never sees: they see no systemd here.
                "[ ! -d /run/systemd ] || mount -t tmpfs -o size=1m tmpfs /run/systemd\n"
            )
            proc = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-eu", "-c", mounts + script],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=540,
                check=False,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            )
            out = proc.stdout
            assert proc.returncode == 0, out + proc.stderr
            [mail] = smtp.wait_for(1, timeout=30)
        queued = _queued_once_counted(name)
    finally:
        rabbitmqctl("delete_user", name, check=False)
        rabbitmqctl("delete_user", f"host-{name}-web-1", check=False)
        rabbitmqctl("delete_vhost", name, check=False)
    assert f"created broker user {name}" in out
    assert "queue limits NOT applied" not in proc.stderr, proc.stderr
    assert "reader  loginwatch can read the config and every secret file" in out
    assert "you@example.org" in str(mail.message["To"])
    # The login the hook reported waits for a worker in its host's alert lane (at least
    # once: the publisher and the flush may both have sent it).
    assert _alerts_waiting(queued) >= 1, queued
    for line in (
        "/etc/loginwatch root:loginwatch 750",
        "/etc/loginwatch/loginwatch.toml root:loginwatch 640",
        "/etc/loginwatch/broker.password loginwatch:loginwatch 600",
        "/etc/loginwatch/host.toml root:root 600",
        "/etc/loginwatch/host.password root:root 600",
        "/var/lib/loginwatch loginwatch:loginwatch 750",
        "/var/lib/loginwatch-host root:root 700",
    ):
        assert line in out
    # After the host's uninstall the central side still connects, from its own venv; as the
    # service user it cannot run rabbitmqctl, so it says it did not look at the host users.
    tail = "broker  connected; every queue exists\n  hosts   limits not checked: rabbitmqctl"
    assert tail in out[-600:], out[-600:]
    assert out.rstrip().endswith("\nloginwatch"), out[-400:]


def _queued_once_counted(vhost: str) -> str:
    """``list_queues`` once the alerts queue counts the hook's event (bounded, 20 s).

    The hook's detached publisher may confirm just before the script ends, and a quorum
    queue's ``messages`` count, as rabbitmqctl reports it, lags behind for a few seconds
    (read once, it said 0 with the event confirmed; read again it said 1)."""
    deadline = time.monotonic() + 20
    while True:
        queued = rabbitmqctl("list_queues", "-p", vhost, "name", "messages").stdout
        if _alerts_waiting(queued) or time.monotonic() > deadline:
            return queued
        time.sleep(0.5)


def _alerts_waiting(queued: str) -> int:
    """Messages in the alerts queue and its lanes, from ``list_queues name messages``."""
    rows = [line.split("\t") for line in queued.splitlines() if "\t" in line]
    return sum(int(count) for name, count in rows
               if re.fullmatch(r"loginwatch\.alerts(\.\d+)?", name))  # fmt: skip
