"""The installed /etc/pam.d/sshd under a real sshd with password authentication.

install-host.sh writes the PAM file into a copy of /etc; sshd (tests/sshd.py, in
a private mount namespace) runs that file as its PAM stack, with only the hook
and config paths pointed at the installed copies. The real ssh client then
types passwords through SSH_ASKPASS: a wrong one is refused and reported as a
failure, a right one logs in and is reported as a login.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.event import Outcome, PamType
from tests.conftest import Vhost
from tests.deploy_host import HOOK_PATH, HOST_CONFIG, InstalledHost
from tests.hookrun import TapQueue
from tests.sshd import TEST_PASSWORD, TEST_USER, Sshd, require_root_namespaces

pytestmark = [pytest.mark.integration, pytest.mark.sshd]


@pytest.fixture
def tap(vhost: Vhost) -> Iterator[TapQueue]:
    queue = TapQueue(vhost.url())
    yield queue
    queue.close()


def installed_stack(host: InstalledHost) -> str:
    """The installed sshd PAM file, its hook and config paths made absolute to the copy."""
    return (
        host.pam_file.read_text()
        .replace(HOOK_PATH, str(host.hook))
        .replace(HOST_CONFIG, str(host.config_path))
    )


def ssh_with_password(
    sshd: Sshd, user: str, password: str, tmp_path: Path, method: str = "password"
) -> int:
    """``ssh USER@127.0.0.1 true`` typing ``password`` via SSH_ASKPASS; the exit status."""
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' '{password}'\n")
    os.chmod(askpass, 0o700)
    env = {
        "PATH": "/usr/bin:/bin",
        "SSH_ASKPASS": str(askpass),
        "SSH_ASKPASS_REQUIRE": "force",
        "DISPLAY": ":0",
    }
    args = sshd.ssh_args(
        user,
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        f"PreferredAuthentications={method}",
        "-o",
        "NumberOfPasswordPrompts=1",
    )
    proc = subprocess.run(
        [*args, "true"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
        start_new_session=True,  # no controlling tty: ssh must use the askpass program
    )
    return proc.returncode


def test_sshd_with_the_installed_stack_refuses_and_reports_a_wrong_password(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    require_root_namespaces()
    config = (
        f'[broker]\nurl = "{vhost.url()}"\nconnect_timeout = 2.0\n'
        f'[host]\nname = "ssh-pw"\n[spool]\ndir = "{tmp_path / "spool"}"\n'
    )
    host = InstalledHost(tmp_path, config)
    with Sshd(installed_stack(host), password_auth=True) as sshd:
        assert ssh_with_password(sshd, TEST_USER, "wrong", tmp_path) == 255, sshd.tail()
        [(_, failure)] = tap.take(1)
        assert ssh_with_password(sshd, TEST_USER, TEST_PASSWORD, tmp_path) == 0, sshd.tail()
        [(_, login)] = tap.take(1)
        assert ssh_with_password(sshd, "no-such-user", TEST_PASSWORD, tmp_path) == 255
        [(_, unknown)] = tap.take(1)
    assert (failure.user, failure.pam_type, failure.outcome) == (
        TEST_USER,
        PamType.AUTH,
        Outcome.FAILURE,
    )
    # UseDNS no: PAM_RHOST is the address (the event says it once, as client_ip),
    # not a name the client's own DNS chose.
    assert (failure.client_ip, failure.rhost) == ("127.0.0.1", ""), failure
    assert (login.user, login.pam_type, login.outcome) == (
        TEST_USER,
        PamType.OPEN_SESSION,
        Outcome.SUCCESS,
    )
    assert login.auth_method == "password"
    # An unknown user runs the auth stack too: reported under the name the client sent.
    assert (unknown.user, unknown.outcome) == ("no-such-user", Outcome.FAILURE)


def test_keyboard_interactive_failures_are_reported_too(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    # deploy/sshd/README.md: with KbdInteractiveAuthentication the PAM prompt is
    # answered through the same auth stack, so a wrong answer is a failure event.
    require_root_namespaces()
    config = f'[broker]\nurl = "{vhost.url()}"\n[spool]\ndir = "{tmp_path / "spool"}"\n'
    host = InstalledHost(tmp_path, config)
    sshd = Sshd(installed_stack(host), password_auth=False)
    sshd.config.write_text(
        sshd.config.read_text().replace(
            "KbdInteractiveAuthentication no", "KbdInteractiveAuthentication yes"
        )
    )
    with sshd:
        status = ssh_with_password(sshd, TEST_USER, "wrong", tmp_path, "keyboard-interactive")
        assert status == 255, sshd.tail()
        [(_, failure)] = tap.take(1)
        status = ssh_with_password(sshd, TEST_USER, TEST_PASSWORD, tmp_path, "keyboard-interactive")
        assert status == 0, sshd.tail()
    assert (failure.user, failure.outcome) == (TEST_USER, Outcome.FAILURE)


def test_a_refused_key_never_reaches_pam(tmp_path: Path, vhost: Vhost, tap: TapQueue) -> None:
    # deploy/sshd/README.md: key-only hosts report no failures; sshd refuses keys itself.
    require_root_namespaces()
    config = f'[broker]\nurl = "{vhost.url()}"\n[spool]\ndir = "{tmp_path / "spool"}"\n'
    host = InstalledHost(tmp_path, config)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with Sshd(installed_stack(host)) as sshd:
        args = sshd.ssh_args(TEST_USER, "-o", "BatchMode=yes")
        args[args.index(str(sshd.client_key))] = str(stranger)
        refused = subprocess.run(
            [*args, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False
        )
        assert refused.returncode == 255
        sshd.ssh(TEST_USER, "true")
        # The first event after the refused key is the login that followed it.
        [(_, first)] = tap.take(1)
    assert (first.pam_type, first.outcome) == (PamType.OPEN_SESSION, Outcome.SUCCESS)
