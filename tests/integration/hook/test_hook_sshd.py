"""The hook under a real sshd and a real PAM stack (in private mount namespaces)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from schemas.event import Outcome, PamType
from tests.support.hookrun import HOOK, TapQueue, warm_settings, write_config
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


def test_a_key_login_yields_one_open_session_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    config = write_config(tmp_path, vhost.url(), host="bastion-1")
    stack = AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(hook, config)
    with Sshd(stack) as sshd:
        if hook != HOOK:  # else the C front-end hands the first login to Python
            warm_settings(config, sshd.ns.run_dir / "loginwatch")
        sshd.ssh(TEST_USER, "true")
        events = [event for _, event in tap.take(2)]
        fingerprint = sshd.client_fingerprint()
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
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
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
        + hook_line(hook, config)
    )
    with Sshd(stack) as sshd:
        if hook != HOOK:
            warm_settings(config, sshd.ns.run_dir / "loginwatch")
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


def _fingerprint(public_key: Path) -> str:
    listed = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    )
    return listed.stdout.split()[1]


def test_a_certificate_login_names_the_key_sshd_names_and_its_ca(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    """The fingerprint is the certified key's (what sshd logs, what ``ssh-keygen -l``
    prints for the key and its certificate), not the whole certificate's hash."""
    name = f"cert-{os.urandom(4).hex()}"
    config = write_config(tmp_path, vhost.url(), host=name)
    sshd = Sshd(AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(HOOK, config))
    ca = sshd.root / "user_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca), "-I", "alice@corp\x1b[2J", "-n", TEST_USER,
         "-z", "18446744073709551615", f"{sshd.client_key}.pub"],
        check=True,
    )  # fmt: skip
    (sshd.root / "authorized_keys").write_text("")  # only the certificate lets one in
    sshd.config.write_text(sshd.config.read_text() + f"TrustedUserCAKeys {ca}.pub\n")
    with sshd:
        key, ca_key = _fingerprint(sshd.client_key.with_suffix(".pub")), _fingerprint(ca)
        sshd.ssh(TEST_USER, "true")
        [event, _] = events_of(tap, name, 2)
        log = sshd.tail()
    assert event.key_type == "ssh-ed25519-cert-v01@openssh.com"
    assert event.fingerprint == key
    assert event.cert is not None
    assert (event.cert.serial, event.cert.ca_type) == ("18446744073709551615", "ssh-ed25519")
    assert event.cert.key_id == "alice@corp\x1b[2J", "hostile text, kept as it is for render"
    assert event.cert.ca_fingerprint == ca_key
    assert f"ED25519-CERT {event.fingerprint} ID" in log
    assert f"CA ED25519 {event.cert.ca_fingerprint}" in log


def test_a_login_with_several_keys_names_each(tmp_path: Path, vhost: Vhost, tap: TapQueue) -> None:
    name = f"keys-{os.urandom(4).hex()}"
    config = write_config(tmp_path, vhost.url(), host=name)
    sshd = Sshd(AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(HOOK, config))
    keys = [sshd.client_key]
    for n, kind in enumerate(("rsa", "ecdsa", "ed25519")):
        key = sshd.root / f"id_{n}"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
        keys.append(key)
    (sshd.root / "authorized_keys").write_text(
        "".join(key.with_suffix(".pub").read_text() for key in keys)
    )
    methods = ",".join(["publickey"] * len(keys))
    sshd.config.write_text(sshd.config.read_text() + f"AuthenticationMethods {methods}\n")
    with sshd:
        options = [arg for key in keys for arg in ("-i", str(key))]
        argv = [*sshd.ssh_args(TEST_USER, "-o", "BatchMode=yes", *options), "true"]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
        [event, _] = events_of(tap, name, 2)
        expected = sorted(_fingerprint(key.with_suffix(".pub")) for key in keys)
    assert event.auth_method == "+".join(["publickey"] * 4)
    used = [event.fingerprint, *(key.fingerprint for key in event.more_keys)]
    assert sorted(used) == expected
    assert {event.key_type, *(key.key_type for key in event.more_keys)} == {
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"
    }  # fmt: skip
