"""The installed /etc/pam.d/sshd under a real sshd with password authentication.

install-host.sh writes the PAM file into a copy of /etc; sshd (tests/support/sshd.py, in
a private mount namespace) runs that file as its PAM stack, with only the hook
and config paths pointed at the installed copies. The real ssh client then
types passwords through SSH_ASKPASS: a wrong one is refused and reported as a
failure, a right one logs in and is reported as a login.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schemas.event import Outcome, PamType
from tests.support.deploy_host import HOOK_PATH, HOST_CONFIG, InstalledHost
from tests.support.hookrun import TapQueue
from tests.support.services import Vhost
from tests.support.sshd import (
    TEST_PASSWORD,
    TEST_UID,
    TEST_USER,
    Preload,
    Sshd,
    events_of,
    require_root_namespaces,
    write_pam_environment,
)

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


def sshd_on_installed_tree(host: InstalledHost) -> Sshd:
    """An sshd whose /etc/pam.d is the installed tree's (every include as installed)."""
    sshd = Sshd(installed_stack(host))
    shutil.copytree(host.root / "etc" / "pam.d", sshd.ns.pam_dir, dirs_exist_ok=True)
    sshd.ns.set_service("sshd", installed_stack(host))
    return sshd


def nested_session_env(etc: Path) -> None:
    """Debian's common-session reading ~/.pam_environment through an include of its own."""
    (etc / "pam.d" / "site-env").write_text("session required pam_env.so user_readenv=1\n")
    common = etc / "pam.d" / "common-session"
    common.write_text(common.read_text() + "session include site-env\n")


# The user's own file: code to preload, and PAM items and sshd variables of their choosing.
HOSTILE_PAM_ENVIRONMENT = """\
LD_PRELOAD DEFAULT={library}
PAM_USER DEFAULT=root
PAM_RHOST DEFAULT=203.0.113.66
PAM_RUSER DEFAULT=admin
PAM_SERVICE DEFAULT=sudo
PAM_TYPE DEFAULT=close_session
SSH_CONNECTION DEFAULT="203.0.113.66 4444 203.0.113.1 22"
SSH_AUTH_INFO_0 DEFAULT="password"
"""
SESSION_LAYOUTS = {"debian (direct)": None, "through an include": nested_session_env}


@pytest.mark.parametrize("layout", SESSION_LAYOUTS.values(), ids=SESSION_LAYOUTS.keys())
def test_the_users_pam_environment_never_runs_as_root_nor_names_the_login(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, layout: Callable[[Path], None] | None
) -> None:
    require_root_namespaces()
    name = f"env-{os.urandom(4).hex()}"
    config = (
        f'[broker]\nurl = "{vhost.url()}"\n[host]\nname = "{name}"\n'
        f'[spool]\ndir = "{tmp_path / "spool"}"\n'
    )
    host = InstalledHost(tmp_path, config, edit_etc=layout)
    with sshd_on_installed_tree(host) as sshd:
        preload = Preload.build(sshd.root)
        write_pam_environment(sshd.ns.home, HOSTILE_PAM_ENVIRONMENT.format(library=preload.library))
        sshd.ssh(TEST_USER, "true")
        [login] = events_of(tap, name, 1)
        marks = preload.by_uid()
    # pam_env did read the file: the user's own command loaded the library...
    assert TEST_UID in marks, sshd.tail()
    # ...and nothing that ran as root did.
    assert 0 not in marks, marks
    assert (login.user, login.service, login.ruser) == (TEST_USER, "sshd", "")
    assert (login.pam_type, login.outcome) == (PamType.OPEN_SESSION, Outcome.SUCCESS)
    assert (login.client_ip, login.server_port, login.auth_method) == (
        "127.0.0.1",
        sshd.port,
        "publickey",
    )
    assert events_of(tap, name, 1, timeout=2) == [], "type=open_session: no logout event"


AUTH_ENV_LAYOUTS = {
    "@include": "@include site-env\n",
    "include": "auth include site-env\n",
    "substack": "auth substack site-env\n",
}


@pytest.mark.parametrize("line", AUTH_ENV_LAYOUTS.values(), ids=AUTH_ENV_LAYOUTS.keys())
def test_why_an_auth_stack_that_reads_the_users_file_is_refused(tmp_path: Path, line: str) -> None:
    # sshd calls pam_setcred before pam_open_session, for a key login too, and
    # pam_env in the auth stack reads ~/.pam_environment then: even a hook
    # placed first in the session stack, at open_session only, starts with
    # the user's LD_PRELOAD, as root. install-host.sh refuses such a stack.
    require_root_namespaces()
    stack = Path("/etc/pam.d/sshd").read_text()
    first = "session optional pam_exec.so quiet type=open_session /usr/bin/true\n"
    at = stack.index("\nsession ") + 1
    with Sshd(stack[:at] + first + stack[at:]) as sshd:
        common_auth = sshd.ns.pam_dir / "common-auth"
        common_auth.write_text(common_auth.read_text() + line)
        (sshd.ns.pam_dir / "site-env").write_text("auth optional pam_env.so user_readenv=1\n")
        preload = Preload.build(sshd.root)
        write_pam_environment(sshd.ns.home, f"LD_PRELOAD DEFAULT={preload.library}\n")
        sshd.ssh(TEST_USER, "true")
        marks = preload.by_uid()
    assert "/usr/bin/true" in marks.get(0, []), (marks, sshd.tail())
