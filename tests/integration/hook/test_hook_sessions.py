"""A session's later facts, for real: sudo (and su run by it) in an SSH session names its
login (the audit session and the sshd process), the session's end comes back from wtmp as
``last`` shows it, and every flush says the host is alive (a clean stop says goodbye)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from schemas.records import Heartbeat, Logout, LogoutEnd, LogoutSource
from schemas.version import VERSION
from tests.support.hookrun import HOOK, TapQueue, warm_settings, write_config
from tests.support.services import Vhost, missing
from tests.support.sshd import ACCOUNT_STACK, AUTH_STACK, SESSION_STACK, TEST_USER, Sshd, hook_line

pytestmark = [pytest.mark.integration, pytest.mark.sshd]

# As Debian's sshd stack: pam_loginuid before the hook, so the session has its audit ids.
LOGINUID = "session  required  pam_loginuid.so\n"


def flush(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOOK, "--config", str(config), *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def logged(line: str, config: Path) -> str:
    """The hook's PAM line with pam_exec's log of what it says (beside the config)."""
    return line.replace("pam_exec.so", f"pam_exec.so log={config.with_suffix('.said')}")


def took_every_run_itself(config: Path) -> bool:
    """No run of the C front-end handed its login to the Python foreground."""
    said = config.with_suffix(".said")
    return said.exists() and b"Python foreground takes" not in said.read_bytes()


def sudo_setup(sshd: Sshd, config: Path, hook: str) -> str:
    """sudo in sshd's namespace: a sudoers of our own (the test user may run anything
    without a password) and a sudo stack with the hook, as install-host.sh places it. For
    the C front-end, the settings cache it reads (else it hands each run to Python)."""
    if hook != HOOK:
        warm_settings(config, sshd.ns.run_dir / "loginwatch")
    if not os.path.exists("/usr/bin/sudo"):
        missing("sudo (apt-get install sudo)")
    sudoers = sshd.root / "sudoers"
    sudoers.write_text(f"Defaults !syslog, !lecture\n{TEST_USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    line = logged(hook_line(hook, config), config)
    line = line.replace("pam_exec.so", "pam_exec.so type=open_session")
    sshd.ns.set_service("sudo", "account  required  pam_permit.so\n" + line)
    # su as root (from sudo): pam_rootok lets it in, as Debian's stack does.
    sshd.ns.set_service("su", "auth  sufficient  pam_rootok.so\n"
                        "account  required  pam_permit.so\n" + line)  # fmt: skip
    return f"mount --bind {sudoers} /etc/sudoers"


def test_sudo_in_an_ssh_session_names_its_login(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    """Once per foreground: the C front-end reads the same links (producer/native)."""
    config = write_config(tmp_path, vhost.url(), host="web-01.prod.example.com")
    line = logged(hook_line(hook, config), config)
    sshd = Sshd(AUTH_STACK + ACCOUNT_STACK + LOGINUID + SESSION_STACK + line)
    sshd.setup = sudo_setup(sshd, config, hook)
    with sshd:
        sshd.ssh(TEST_USER, "sudo -n su -c true root")
        events = [e for _, e in tap.take(4)]
    kinds = [e.kind for e in events]
    assert sorted(kinds) == ["login", "logout", "su", "sudo"], (kinds, sshd.tail())
    login = next(e for e in events if e.kind == "login")
    sudo = next(e for e in events if e.kind == "sudo")
    assert (sudo.service, sudo.user, sudo.ruser) == ("sudo", "root", TEST_USER)
    # The kernel's link: pam_loginuid works here (the test runs as real root; in a container
    # without CAP_AUDIT_CONTROL both would be None and the sshd link alone would hold).
    assert login.audit_session is not None and sudo.audit_session == login.audit_session
    assert login.login_uid == sudo.login_uid == 4242
    # The process link: sudo's hook found the login's sshd monitor above itself.
    assert login.session_pid > 0 and sudo.session_pid == login.session_pid
    assert sudo.session_start == login.session_start > 0
    # su run by that sudo: the same session, the same links.
    su = next(e for e in events if e.kind == "su")
    assert (su.service, su.user, su.ruser) == ("su", "root", "root")
    assert (su.audit_session, su.session_pid) == (login.audit_session, login.session_pid)
    assert took_every_run_itself(config), config.with_suffix(".said").read_text()


def test_without_pam_loginuid_the_sshd_process_alone_links_sudo_to_its_login(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    # As in a container where pam_loginuid cannot write: the audit ids stay unset.
    config = write_config(tmp_path, vhost.url(), host="web-04")
    line = logged(hook_line(hook, config), config)
    sshd = Sshd(AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + line)
    sshd.setup = sudo_setup(sshd, config, hook)
    with sshd:
        sshd.ssh(TEST_USER, "sudo -n true")
        events = {e.kind: e for _, e in tap.take(3)}
    assert sorted(events) == ["login", "logout", "sudo"], (events, sshd.tail())
    login, sudo = events["login"], events["sudo"]
    assert (login.audit_session, sudo.audit_session, sudo.login_uid) == (None, None, None)
    assert (sudo.session_pid, sudo.session_start) == (login.session_pid, login.session_start)
    assert login.session_pid > 0
    assert took_every_run_itself(config), config.with_suffix(".said").read_text()


def test_a_session_with_a_terminal_comes_back_from_wtmp_as_last_shows_it(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    if shutil.which("last") is None:
        missing("last (apt-get install util-linux)")
    records = tmp_path / "records"
    records.mkdir()
    records.chmod(0o755)
    for name in ("wtmp", "lastlog"):
        (records / name).write_bytes(b"")
    config = write_config(tmp_path, vhost.url(), host="web-02",
                          host_keys=(f'wtmp = "{records / "wtmp"}"', 'wtmpdb = ""'))  # fmt: skip
    # sshd writes wtmp and lastlog of its namespace: our files, never the machine's.
    setup = (f"mount --bind {records / 'wtmp'} /var/log/wtmp\n"
             f"mount --bind {records / 'lastlog'} /var/log/lastlog\ntouch /run/utmp")  # fmt: skip
    stack = AUTH_STACK + ACCOUNT_STACK + LOGINUID + SESSION_STACK + hook_line(HOOK, config)
    with Sshd(stack, setup=setup) as sshd:
        first = flush(config, "flush")
        assert first.returncode == 0, first.stdout + first.stderr
        assert [type(m) for _, m in tap.take_others(1)] == [Heartbeat]
        sshd.ssh(TEST_USER, "sleep 1.2", tty=True)
        [(_, login), _] = tap.take(2)
    second = flush(config, "flush")
    assert second.returncode == 0 and "with 1 logout(s)" in second.stdout, second.stdout
    found = [m for _, m in tap.take_others(2)]
    assert [type(m) for m in found] == [Logout, Heartbeat]
    logout = found[0]
    assert isinstance(logout, Logout)
    assert (logout.host, logout.user, logout.source, logout.end) == (
        "web-02", TEST_USER, LogoutSource.WTMP, LogoutEnd.LOGOUT)  # fmt: skip
    assert logout.client_ip == socket.inet_aton("127.0.0.1") == socket.inet_aton(login.client_ip)
    assert logout.login_time is not None and logout.length is not None
    assert abs((logout.login_time - login.time).total_seconds()) < 2
    assert 1.2 <= logout.length < 10
    # wtmp's pid is sshd's session monitor: the very process the login's hook recorded.
    assert logout.session_pid == login.session_pid > 0
    # `last` reads the same file: the same user, line and minutes.
    shown = subprocess.run(["last", "-F", "-w", "-f", str(records / "wtmp")], env={"TZ": "UTC"},
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    row = next(line for line in shown.splitlines() if line.startswith(TEST_USER))
    assert logout.tty in row
    assert logout.login_time.strftime("%a %b %e %H:%M:%S %Y") in row, (shown, logout)
    assert logout.time.strftime("- %a %b %e %H:%M:%S %Y") in row, (shown, logout)
    # Once sent, the cursor moved: the next flush sends only a heartbeat.
    third = flush(config, "flush")
    assert "with 0 logout(s)" in third.stdout, third.stdout


def test_every_flush_says_the_host_is_alive_and_a_clean_stop_says_goodbye(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    config = write_config(tmp_path, vhost.url(), host="web-03", host_keys=('wtmp = ""',))
    done = flush(config, "flush")
    assert done.returncode == 0, done.stdout + done.stderr
    [(properties, beat)] = tap.take_others(1)
    assert isinstance(beat, Heartbeat)
    assert (beat.host, beat.hook_version, beat.spool_depth, beat.goodbye) == (
        "web-03", VERSION, 0, False)  # fmt: skip
    assert properties.type == "loginwatch.Heartbeat"
    bye = flush(config, "goodbye", "--why", "uninstall")
    assert bye.returncode == 0 and "goodbye sent" in bye.stdout, bye.stdout + bye.stderr
    [(_, last)] = tap.take_others(1)
    assert isinstance(last, Heartbeat) and (last.goodbye, last.why) == (True, "uninstall")
