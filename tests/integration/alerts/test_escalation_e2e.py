"""An ssh login, then ``sudo -n true`` in it, for real: a real sshd with the hook in its
and sudo's stacks, the broker, the worker and an SMTP server. The escalation's alert names
the login it came from (the audit session where pam_loginuid set one, else the sshd
process); a route with ``escalation_only`` mails it at once."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.hookrun import HOOK
from tests.support.hookrun import write_config as host_config
from tests.support.services import Vhost, missing
from tests.support.smtp_server import SmtpServer
from tests.support.sshd import ACCOUNT_STACK, AUTH_STACK, SESSION_STACK, TEST_USER, Sshd, hook_line
from tests.support.worker_helpers import central_sections, loginwatch, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.sshd]

ROUTES = """
[[route]]
to = ["sec@test.example"]
kinds = ["sudo", "su"]
escalation_only = true

[[route]]
to = ["ops@test.example"]
kinds = ["login"]
"""


def test_sudo_after_an_ssh_login_names_it(vh: Vhost, tmp_path: Path) -> None:
    if not os.path.exists("/usr/bin/sudo"):
        missing("sudo (apt-get install sudo)")
    host = host_config(tmp_path, vh.url(), host="web-01", host_keys=('wtmp = ""', 'wtmpdb = ""'))
    stack = (AUTH_STACK + ACCOUNT_STACK + "session  required  pam_loginuid.so\n" + SESSION_STACK
             + hook_line(HOOK, host))  # fmt: skip
    sshd = Sshd(stack)
    sudoers = sshd.root / "sudoers"
    sudoers.write_text(f"Defaults !syslog, !lecture\n{TEST_USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    hook = hook_line(HOOK, host).replace("pam_exec.so", "pam_exec.so type=open_session")
    sshd.ns.set_service("sudo", "account  required  pam_permit.so\n" + hook)
    sshd.setup = f"mount --bind {sudoers} /etc/sudoers"
    config = tmp_path / "central.toml"
    with SmtpServer() as smtp:
        config.write_text(central_sections(vh.url(), smtp.port, tmp_path, "1, 2") + ROUTES)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"), sshd:
            sshd.ssh(TEST_USER, "sudo -n true")
            mails = smtp.wait_for(2, timeout=30)
            key = sshd.client_fingerprint()
    by_to = {str(m.message["To"]): m.message for m in mails}
    login = by_to["ops@test.example"]
    assert str(login["Subject"]).strip().startswith(f"NEW SOURCE: Login {TEST_USER}@web-01")
    sudo = by_to["sec@test.example"]
    assert str(sudo["Subject"]).strip().startswith("ESCALATION: Sudo root@web-01")
    text = sudo.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("Someone became root on web-01 via sudo.")
    said = re.search(rf"\*\*\* {TEST_USER}, in over SSH from 127\.0\.0\.1 with key (SHA256:\S+),"
                     r" became root on web-01 via sudo \(linked by (audit session \d+|sshd"
                     r" process \d+)\)\. \*\*\*", text)  # fmt: skip
    assert said, text
    assert said[1] == key
