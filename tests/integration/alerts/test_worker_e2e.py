"""End to end on real parts: ssh → sshd → PAM → hook → RabbitMQ → worker → SMTP inbox."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from schemas import topology
from tests.support.hookrun import HOOK
from tests.support.hookrun import write_config as host_config
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer, html_part, text_part
from tests.support.sshd import (
    ACCOUNT_STACK,
    AUTH_STACK,
    SESSION_STACK,
    TEST_USER,
    PamNamespace,
    Sshd,
    hook_line,
    require_root_namespaces,
)
from tests.support.worker_helpers import depth, loginwatch, running_worker, write_config

pytestmark = [pytest.mark.integration, pytest.mark.sshd]


def test_two_ssh_logins_become_two_mails_and_only_the_first_is_a_new_source(
    vh: Vhost, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    hook_config = host_config(host_dir, vh.url(), host="bastion-7")
    stack = AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(HOOK, hook_config)
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port)
        # Logins only: the logout events go to the digest queue, not to the inbox.
        config.write_text(config.read_text().replace('mode = "immediate"', 'kinds = ["login"]'))
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"), Sshd(stack) as sshd:
            sshd.ssh(TEST_USER, "true")
            first = smtp.wait_for(1)
            sshd.ssh(TEST_USER, "true")
            both = smtp.wait_for(2)
            fingerprint = sshd.client_fingerprint()
    assert len(first) == 1 and len(both) == 2, sshd.tail()
    one, two = (received.message for received in both)
    for mail in (one, two):
        assert mail["To"] == "ops@test.example"
        assert TEST_USER in mail["Subject"] and "bastion-7" in mail["Subject"]
        text = text_part(mail)
        assert "127.0.0.1" in text
        assert fingerprint in text
    assert "NEW SOURCE" in one["Subject"]
    assert "first time" in text_part(one).lower()
    assert "NEW SOURCE" not in two["Subject"]
    assert "first time" not in text_part(two).lower()
    assert depth(vh, topology.DEAD_QUEUE) == 0


HOSTILE_USERS = {
    "header injection": "evil\r\nBcc: victim@example.com",
    "html": "<script>alert(1)</script>",
    "template": "{{ 7*7 }}{% raw %}",
    "4 KiB": "a" * 4096,
}
EXPECTED_HEADERS = [
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "X-Loginwatch-Event", "X-Loginwatch-Action", "MIME-Version", "Content-Type",
]  # fmt: skip


def test_hostile_user_names_from_a_real_pam_run_stay_text(vh: Vhost, tmp_path: Path) -> None:
    require_root_namespaces()
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    hook_config = host_config(host_dir, vh.url(), host="pam-host")
    ns = PamNamespace(tmp_path / "ns")
    ns.set_service(
        "lwtest-hostile", "session  optional  pam_permit.so\n" + hook_line(HOOK, hook_config)
    )
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"):
            for user in HOSTILE_USERS.values():
                status, output = ns.run(
                    f"pamtester lwtest-hostile {shlex.quote(user)} open_session"
                )
                assert status == 0, output
            mails = smtp.wait_for(len(HOSTILE_USERS), timeout=30)
    assert len(mails) == len(HOSTILE_USERS)
    for received in mails:
        assert [rcpt.lower() for rcpt in received.rcpt_tos] == ["ops@test.example"]
        mail = received.message
        assert list(mail.keys()) == EXPECTED_HEADERS
        assert "\n" not in str(mail["Subject"]) and "\r" not in str(mail["Subject"])
        html = html_part(mail)
        text = text_part(mail)
        assert "<script>" not in html
        assert not any(line.startswith("Bcc:") for line in text.splitlines())
    subjects = " ".join(str(m.message["Subject"]) for m in mails)
    htmls = " ".join(html_part(m.message) for m in mails)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in htmls
    assert "{{ 7*7 }}{% raw %}" in htmls and "{{ 7*7 }}{% raw %}" in subjects  # not evaluated
    # CR/LF are shown as visible symbols, in the subject as in the text: never a new line.
    assert "evil␍␊Bcc: victim@example.com" in subjects
