"""The hook under a real sshd and a real PAM stack (in private mount namespaces)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.event import Outcome, PamType
from tests.support.hookrun import HOOK, TapQueue, write_config
from tests.support.services import Vhost
from tests.support.sshd import (
    ACCOUNT_STACK,
    AUTH_STACK,
    SESSION_STACK,
    TEST_PASSWORD,
    TEST_USER,
    PamNamespace,
    Sshd,
    events_of,
    hook_line,
    require_root_namespaces,
    write_pam_environment,
)

pytestmark = [pytest.mark.integration, pytest.mark.sshd]

# Debian's common-auth with the hook on the failure branch: on success skip the
# hook and the deny; on failure run the (optional) hook, then deny as before.
FAILURE_AUTH_STACK = """\
auth  [success=2 default=ignore]  pam_unix.so nullok
{hook}auth  requisite  pam_deny.so
auth  required   pam_permit.so
"""


@pytest.fixture
def tap(vhost: Vhost) -> Iterator[TapQueue]:
    queue = TapQueue(vhost.url())
    yield queue
    queue.close()


def test_a_key_login_yields_one_open_session_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    config = write_config(tmp_path, vhost.url(), host="bastion-1")
    stack = AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(HOOK, config)
    with Sshd(stack) as sshd:
        sshd.ssh(TEST_USER, "true")
        events = [event for _, event in tap.take(2)]
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", f"{sshd.client_key}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1]
    opened = [e for e in events if e.pam_type is PamType.OPEN_SESSION]
    assert len(opened) == 1, (events, sshd.tail())
    [event] = opened
    assert (event.host, event.user, event.service) == ("bastion-1", TEST_USER, "sshd")
    assert event.client_ip == "127.0.0.1" and event.client_port > 0
    assert (event.server_ip, event.server_port) == ("127.0.0.1", sshd.port)
    assert event.auth_method == "publickey"
    assert event.key_type == "ssh-ed25519"
    assert event.fingerprint == fingerprint
    assert event.outcome is Outcome.SUCCESS
    assert [e.kind for e in events] == ["login", "logout"]


@pytest.mark.parametrize(("password", "succeeds"), [("wrong", False), (TEST_PASSWORD, True)])
def test_a_failed_password_reaches_the_hook_as_a_failure(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, password: str, succeeds: bool
) -> None:
    require_root_namespaces()
    config = write_config(tmp_path, vhost.url(), host="db-2")
    hook = hook_line(HOOK, config, "--outcome", "failure", kind="auth")
    ns = PamNamespace(tmp_path / "ns")
    ns.set_service("lwtest-auth", FAILURE_AUTH_STACK.format(hook=hook) + ACCOUNT_STACK)
    status, output = ns.pamtester("lwtest-auth", TEST_USER, password)
    assert (status == 0) is succeeds, output
    if succeeds:
        assert "successfully authenticated" in output
        assert tap.take(1, timeout=2) == [], "a good password is not reported as a failure"
        return
    assert "Authentication failure" in output
    [(_, event)] = tap.take(1)
    assert (event.user, event.host, event.kind) == (TEST_USER, "db-2", "failure")
    assert (event.pam_type, event.outcome) == (PamType.AUTH, Outcome.FAILURE)
    assert tap.take(1, timeout=1) == []


def test_a_users_copy_of_a_pam_item_never_reaches_the_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    # The hook placed after pam_env user_readenv=1 by hand (install-host.sh
    # never does): the user's variables are in its environment, first. Their
    # PAM_* copies lose to pam_exec's own; SSH_CONNECTION is not pam_exec's,
    # and pam_env overwrote sshd's: only the placement keeps that one honest.
    require_root_namespaces()
    name = f"bastion-{os.urandom(4).hex()}"
    config = write_config(tmp_path, vhost.url(), host=name)
    stack = (
        AUTH_STACK
        + ACCOUNT_STACK
        + SESSION_STACK
        + "session required pam_env.so user_readenv=1\n"
        + hook_line(HOOK, config)
    )
    with Sshd(stack) as sshd:
        write_pam_environment(
            sshd.ns.home,
            "PAM_USER DEFAULT=root\nPAM_SERVICE DEFAULT=sudo\nPAM_TYPE DEFAULT=auth\n"
            "PAM_RUSER DEFAULT=admin\nPAM_TTY DEFAULT=/dev/pts/9\n"
            'SSH_CONNECTION DEFAULT="203.0.113.66 4444 203.0.113.1 22"\n',
        )
        sshd.ssh(TEST_USER, "true")
        events = events_of(tap, name, 2)
        log = sshd.tail()
    assert [(e.kind, e.pam_type) for e in events] == [
        ("login", PamType.OPEN_SESSION),
        ("logout", PamType.CLOSE_SESSION),
    ], log
    for event in events:
        assert (event.user, event.service, event.ruser, event.tty) == (TEST_USER, "sshd", "", "ssh")
    assert events[0].client_ip == "203.0.113.66"
