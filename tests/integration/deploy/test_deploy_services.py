"""``install-host.sh --services sshd,su,sudo,login``: the hook in each stack under sshd's
rules, proven with pamtester on this machine's real stacks (copied, in a private namespace):
nobody's authentication changes, su and sudo report each session once with kinds of their
own, a stack that reads the user's file is refused, and ``--uninstall`` (or a later run
without a service) gives back every file byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from producer import capture
from producer.build import build_event
from tests.support.deploy_host import INSTALL_HOST, VENV, InstalledHost, run_install
from tests.support.hookrun import spool_records
from tests.support.services import missing
from tests.support.sshd import TEST_PASSWORD, TEST_USER, require_root_namespaces

pytestmark = [pytest.mark.integration, pytest.mark.sshd]

OFFLINE_BROKER = 'url = "amqp://guest:guest@127.0.0.1:1/%2F"\nconnect_timeout = 1.0\n'
SERVICES = ("sshd", "su", "sudo", "login")


def host_config(spool: Path) -> str:
    return f'[broker]\n{OFFLINE_BROKER}[host]\nname = "pam-test"\n[spool]\ndir = "{spool}"\n'


def no_fail_delay(etc: Path) -> None:
    """pam_unix without its ~2 s delay after a failure (which nothing here tests)."""
    common_auth = etc / "pam.d" / "common-auth"
    common_auth.write_text(common_auth.read_text().replace("pam_unix.so", "pam_unix.so nodelay"))


def require_stacks() -> None:
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")
    for name in SERVICES:
        if not Path("/etc/pam.d", name).exists():
            missing(f"/etc/pam.d/{name} (apt-get install sudo login)")


@pytest.fixture
def host(tmp_path: Path) -> InstalledHost:
    require_stacks()
    return InstalledHost(tmp_path, host_config(tmp_path / "spool"), "--services",
                         ",".join(SERVICES), edit_etc=no_fail_delay)  # fmt: skip


def spooled(spool: Path) -> list[tuple[str, str, str]]:
    events = [build_event(capture.parse(r), None) for r in spool_records(spool)]
    return [(e.service, e.kind, e.user) for e in events]


def test_su_and_sudo_sessions_are_reported_once_with_kinds_of_their_own(
    host: InstalledHost, tmp_path: Path
) -> None:
    for service in ("sudo", "su", "login"):
        status, output = host.run(f"pamtester -v {service} {TEST_USER} open_session close_session")
        assert status == 0, output
    assert spooled(tmp_path / "spool") == [
        ("sudo", "sudo", TEST_USER),  # at open_session only: one event per escalation
        ("su", "su", TEST_USER),
        ("login", "console", TEST_USER),  # the console as sshd: its end too
        ("login", "console-end", TEST_USER),
    ]
    pam = host.root / "etc" / "pam.d"
    for service in ("su", "sudo"):
        [line] = [
            line for line in (pam / service).read_text().splitlines() if "loginwatch-hook" in line
        ]
        assert line.startswith("session optional pam_exec.so quiet type=open_session ")
    assert "--outcome failure" not in (pam / "sudo").read_text()  # failures: sshd's only


def test_nobodys_authentication_changes(host: InstalledHost, tmp_path: Path) -> None:
    # What this machine's own stacks decide (the same copy, without loginwatch) …
    plain = InstalledHost(tmp_path / "plain", host_config(tmp_path / "spool2"), "--services",
                          "sshd", edit_etc=no_fail_delay)  # fmt: skip
    for service in ("sudo", "su", "login"):
        command = f"pamtester {service} {TEST_USER} authenticate"
        for password in (TEST_PASSWORD, "wrong"):
            before, _ = plain.run(command, stdin=password + "\n")
            after, _ = host.run(command, stdin=password + "\n")
            assert after == before, (service, password)
        if service != "su":  # su lets root in without a password (pam_rootok): pamtester is root
            assert host.run(command, stdin="wrong\n")[0] != 0


def test_uninstall_and_a_shorter_list_give_every_file_back_byte_for_byte(tmp_path: Path) -> None:
    require_stacks()
    host = InstalledHost(tmp_path, host_config(tmp_path / "spool"), "--services",
                         ",".join(SERVICES))  # fmt: skip
    pam = host.root / "etc" / "pam.d"
    original = {name: Path("/etc/pam.d", name).read_bytes() for name in SERVICES}
    assert all(b"loginwatch-hook" in (pam / name).read_bytes() for name in SERVICES)
    checked = run_install("--root", host.root, "--check")
    assert all(f"/etc/pam.d/{name} is up to date" in checked for name in SERVICES), checked
    # A later run without --services keeps the list; one with a shorter list gives back the rest.
    again = run_install("--root", host.root, "--venv", VENV, "--config", host.config)
    assert "already up to date" in again
    run_install("--root", host.root, "--venv", VENV, "--config", host.config, "--services", "sshd")
    assert {n: (pam / n).read_bytes() for n in ("su", "sudo", "login")} == {
        n: original[n] for n in ("su", "sudo", "login")}  # fmt: skip
    run_install("--root", host.root, "--venv", VENV, "--config", host.config, "--services",
                "sudo,sshd")  # fmt: skip
    run_install("--root", host.root, "--uninstall")
    assert {name: (pam / name).read_bytes() for name in SERVICES} == original


def test_a_stack_that_reads_the_users_file_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    require_stacks()

    def user_env_in_auth(etc: Path) -> None:
        login = etc / "pam.d" / "login"
        login.write_text("auth required pam_env.so user_readenv=1\n" + login.read_text())

    with pytest.raises(AssertionError, match="refusing to install, nothing changed"):
        InstalledHost(tmp_path, host_config(tmp_path / "spool"), "--services", "sshd,login",
                      edit_etc=user_env_in_auth)  # fmt: skip
    pam = tmp_path / "root" / "etc" / "pam.d"
    assert b"loginwatch" not in (pam / "sshd").read_bytes()


def test_an_unknown_service_is_refused_by_name(tmp_path: Path) -> None:
    require_stacks()
    with pytest.raises(AssertionError, match='unknown service "cron"'):
        run_install("--root", tmp_path, "--services", "sshd,cron", script=INSTALL_HOST)
