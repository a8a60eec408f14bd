"""The real hook binary while the broker is unreachable: a full spool, unsafe directories,
a publisher that cannot even start. Whatever happens, the hook exits 0 at once, the login
goes on, and one line says what went wrong."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from producer import capture
from producer.hook import FOREGROUND_BOUND_S
from tests.support.hookrun import (
    FAILED_PASSWORD,
    HOOK,
    PAM_ENV,
    SilentListener,
    dropped,
    run_hook,
    spooled,
    spooled_users,
    unreachable_url,
    wait_for,
    write_config,
)

HOOK_BOUND_S = FOREGROUND_BOUND_S + 3


@pytest.fixture
def down(tmp_path: Path) -> Path:
    """A host config whose broker is unreachable (nothing listens on the port)."""
    return write_config(tmp_path, unreachable_url())


def _users(config_dir: Path) -> list[bytes]:
    return spooled_users(config_dir)


def _dropped(config_dir: Path) -> int:
    return dropped(config_dir).total


# --- 9.5: a brute force cannot push the real login out of the spool ---------


def test_a_brute_force_fills_the_spool_and_the_real_login_is_still_kept(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, unreachable_url(), "max_events = 4")
    for _ in range(6):
        run = run_hook(config, env=FAILED_PASSWORD, args=("--outcome", "failure"))
        assert run.returncode == 0
    assert _users(tmp_path) == [b"root"] * 4
    # Counted by the hook, or by the publisher it handed the record to, which found no broker.
    assert wait_for(lambda: _dropped(tmp_path) == 2), "the failures that found the spool full"

    login = run_hook(config, timeout=HOOK_BOUND_S)
    assert login.returncode == 0
    assert login.seconds < HOOK_BOUND_S
    assert b"failed-login record(s) dropped to keep this login" in login.stderr
    assert sorted(_users(tmp_path)) == [b"alice", b"root", b"root", b"root"]
    assert _dropped(tmp_path) == 3, "the failure that gave way is counted"

    # More failures change nothing: the login stays.
    run_hook(config, env=FAILED_PASSWORD, args=("--outcome", "failure"))
    assert b"alice" in _users(tmp_path)


def test_a_parallel_brute_force_loses_nothing_uncounted_and_never_the_login(
    tmp_path: Path,
) -> None:
    """Sixteen failed passwords at once around one login, into a spool of four."""
    config = write_config(tmp_path, unreachable_url(), "max_events = 4")
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    failures = [
        subprocess.Popen(
            [HOOK, "--config", str(config), "--outcome", "failure"],
            env={**base, **FAILED_PASSWORD},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(16)
    ]
    login = run_hook(config, timeout=HOOK_BOUND_S)
    assert [p.wait(timeout=HOOK_BOUND_S) for p in failures] == [0] * 16
    assert login.returncode == 0

    # Each event is either in the spool or counted (by a hook, or by the publisher a
    # refused record was handed to): nothing goes without a trace. The login is spooled
    # by its hook, or, when a loaded host kept that hook past its deadline, by the
    # publisher it handed the login to in memory.
    def settled() -> bool:
        users = _users(tmp_path)
        return b"alice" in users and len(users) + _dropped(tmp_path) == 17

    assert wait_for(settled, timeout=30), (_users(tmp_path), _dropped(tmp_path), login.stderr)


def test_a_login_the_spool_refused_is_counted_when_the_broker_never_answers(
    tmp_path: Path,
) -> None:
    """The publisher holding it in memory runs out of its own time (publish_timeout)
    while a silent broker keeps it waiting: the login is still counted, with what it was."""
    with SilentListener() as port:
        config = write_config(
            tmp_path, f"amqp://guest:guest@127.0.0.1:{port}/%2F", "max_events = 1"
        )
        config.write_text(
            config.read_text().replace("publish_timeout = 8.0", "publish_timeout = 1")
        )
        assert run_hook(config, timeout=HOOK_BOUND_S).returncode == 0  # fills the spool
        run = run_hook(config, env={**PAM_ENV, "PAM_USER": "root"}, timeout=HOOK_BOUND_S)
        assert b"event not spooled: 1 events spooled (max_events 1)" in run.stderr
        assert wait_for(lambda: dropped(tmp_path).total == 1, timeout=10)
    [lost] = dropped(tmp_path).listed
    assert (lost.urgent, lost.user, lost.remote) == (True, b"root", b"192.0.2.10")
    assert spooled_users(tmp_path) == [b"alice"]


def test_thousands_of_pam_variables_cost_no_more_than_their_size(tmp_path: Path) -> None:
    """15,000 variables (~1.6 MB, near what execve takes at all) before pam_exec's items:
    the hook keeps its own few, skips the rest unparsed, and the login goes on. Its time
    against a bare interpreter's with the same environment: bench_hook's big_env figure."""
    config = write_config(tmp_path, unreachable_url())
    env = {f"X{n:05d}": "v" * 100 for n in range(15_000)}
    env |= {"PAM_USERS": "root", "SSH_CONNECTIONS": "203.0.113.9 1 203.0.113.1 22", **PAM_ENV}
    run = run_hook(config, env=env, timeout=HOOK_BOUND_S)
    assert run.returncode == 0 and run.stderr == b""
    [record] = spooled(tmp_path)
    items = capture.parse(record)
    assert items["PAM_USER"] == b"alice"
    assert items["SSH_CONNECTION"] == PAM_ENV["SSH_CONNECTION"].encode()
    assert "X00001" not in items and len(record) < 1024


# --- 9.7: directories and files someone else controls -----------------------


def test_a_group_writable_spool_is_refused_and_the_login_goes_on(
    tmp_path: Path, down: Path
) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool").chmod(0o775)
    run = run_hook(down, timeout=HOOK_BOUND_S)
    assert run.returncode == 0
    [line] = run.stderr.decode().splitlines()
    assert "event not spooled" in line and "writable by group or others (mode 0775)" in line
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_symlinked_spool_is_not_followed(tmp_path: Path, down: Path) -> None:
    target = tmp_path / "etc-cron.d"
    target.mkdir(mode=0o700)
    (tmp_path / "spool").symlink_to(target)
    run = run_hook(down, timeout=HOOK_BOUND_S)
    assert run.returncode == 0
    assert b"is a symlink" in run.stderr
    assert list(target.iterdir()) == []


def test_a_settings_cache_in_a_world_writable_dir_is_not_believed(
    tmp_path: Path, down: Path
) -> None:
    """Outside PAM ($LOGINWATCH_RUNTIME_DIR is honoured there), a planted cache file."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o777)
    elsewhere = tmp_path / "attacker-spool"
    elsewhere.mkdir(mode=0o700)
    env = {k: v for k, v in PAM_ENV.items() if k != "PAM_TYPE"}
    env["LOGINWATCH_RUNTIME_DIR"] = str(run_dir)
    # What a valid cache pointing the spool elsewhere looks like.
    st = os.stat(down)
    mangled = os.path.abspath(down).replace("%", "%25").replace("/", "%2F")
    stamp = b"%d:%d:%d" % (st.st_ino, st.st_size, st.st_mtime_ns)
    fields = [os.fsencode(os.path.abspath(down)), os.fsencode(elsewhere), b"10", b"1000000"]
    forged = b"\0".join([b"LWSET1", stamp, *fields])
    (run_dir / f"hook-settings-{mangled}").write_bytes(forged)
    run = run_hook(down, env=env, timeout=HOOK_BOUND_S)
    assert run.returncode == 0
    assert b"settings cache not used" in run.stderr and b"writable by group or others" in run.stderr
    assert list(elsewhere.iterdir()) == []
    assert len(spooled(tmp_path)) == 1, "the event went to the configured spool"


# --- 10.3: `loginwatch-hook spool` says how long the oldest event has waited --


def test_spool_shows_the_age_of_the_oldest_event(tmp_path: Path, down: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    two_hours_ago = time.time_ns() - 2 * 3600 * 10**9
    for at in (time.time_ns(), two_hours_ago):
        name, data = capture.record({b"PAM_TYPE": b"open_session"}, "", at)
        (spool_dir / name).write_bytes(data)
    shown = subprocess.run(
        [HOOK, "--config", str(down), "spool"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "waiting: 2" in shown.stdout
    # Two hours, and at most a minute more on a slow machine.
    assert re.search(r"^oldest:  2h0[01]m ago$", shown.stdout, re.M), shown.stdout
    assert ".cap" not in shown.stdout


def test_spool_says_what_was_dropped_with_hostile_names_made_visible(
    tmp_path: Path, down: Path
) -> None:
    from producer import ledger

    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    _, login = capture.record({b"PAM_TYPE": b"open_session", b"PAM_USER": b"\x1b[2Jroot"}, "", 1)
    _, failure = capture.record({b"PAM_TYPE": b"auth", b"PAM_RHOST": b"10.0.0.1"}, "failure", 2)
    ledger.add(str(spool_dir), [ledger.describe(login), ledger.describe(failure)], uncounted=1)
    shown = subprocess.run(
        [HOOK, "--config", str(down), "spool"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "dropped: 3 (reported with the next event)" in shown.stdout
    assert "1 of them logins or logouts" in shown.stdout
    assert re.search(r"1970-01-01 \S+ login/logout user '\\x1b\[2Jroot' from ''", shown.stdout)
    assert "other user '' from '10.0.0.1'" in shown.stdout
    assert "\x1b" not in shown.stdout, "no terminal escape reaches the terminal"
    assert "slots:   none yet" in shown.stdout
