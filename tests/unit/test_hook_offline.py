"""The real hook binary while the broker is unreachable: a full spool, unsafe directories,
a publisher that cannot even start. Whatever happens, the hook exits 0 at once, the login
goes on, and one line says what went wrong."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer import capture
from producer.hook import FOREGROUND_BOUND_S
from tests.support.hookrun import HOOK, PAM_ENV, run_hook, spooled, write_config
from tests.support.syslog_capture import SyslogNamespace

HOOK_BOUND_S = FOREGROUND_BOUND_S + 3
FAILED_PASSWORD = {
    "PAM_TYPE": "auth",
    "PAM_SERVICE": "sshd",
    "PAM_USER": "root",
    "PAM_RHOST": "203.0.113.66",
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def down(tmp_path: Path) -> Path:
    """A host config whose broker is unreachable (nothing listens on the port)."""
    return write_config(tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F")


def _users(config_dir: Path) -> list[bytes]:
    return [capture.parse(p.read_bytes()).get("PAM_USER", b"") for p in spooled(config_dir)]


def _dropped(config_dir: Path) -> int:
    return int((config_dir / "spool" / "dropped").read_text())


# --- 9.5: a brute force cannot push the real login out of the spool ---------


def test_a_brute_force_fills_the_spool_and_the_real_login_is_still_kept(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F", "max_events = 4"
    )
    for _ in range(6):
        run = run_hook(config, env=FAILED_PASSWORD, args=("--outcome", "failure"))
        assert run.returncode == 0
    assert _users(tmp_path) == [b"root"] * 4
    assert _dropped(tmp_path) == 2, "the failures that found the spool full"

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
    config = write_config(
        tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F", "max_events = 4"
    )
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
    users = _users(tmp_path)
    assert b"alice" in users
    # Each event is either in the spool or counted: nothing goes without a trace.
    assert len(users) + _dropped(tmp_path) == 17


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


def test_a_symlinked_counter_is_not_followed_and_the_events_are_kept(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F", "max_events = 1"
    )
    victim = tmp_path / "shadow"
    victim.write_text("root:$6$x:1::::::\n")
    (tmp_path / "spool").mkdir(mode=0o700)
    (tmp_path / "spool" / "dropped").symlink_to(victim)
    assert run_hook(config, timeout=HOOK_BOUND_S).returncode == 0
    assert len(spooled(tmp_path)) == 1, "the event itself is kept"
    run = run_hook(config, timeout=HOOK_BOUND_S)  # full: the drop would be counted
    assert run.returncode == 0
    [line] = run.stderr.decode().splitlines()
    assert "the drop could not be counted either: dropped is a symlink: not followed" in line
    assert victim.read_text() == "root:$6$x:1::::::\n"
    assert len(spooled(tmp_path)) == 1


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


# --- 10.3: a publisher that cannot start says why ----------------------------


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[SyslogNamespace]:
    ns = SyslogNamespace(tmp_path / "syslog")
    yield ns
    ns.close()


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('raise ImportError("pika is broken on this host")', "ImportError: pika is broken"),
        ('raise RuntimeError("half an upgrade")', "RuntimeError: half an upgrade"),
        ("raise SystemExit(3)", "SystemExit: 3"),
    ],
    ids=["import error", "any exception", "system exit"],
)
def test_a_publisher_that_cannot_import_logs_one_line(
    tmp_path: Path, down: Path, syslog: SyslogNamespace, broken: str, expected: str
) -> None:
    # A broken pika where the hook's Python finds it first (this test hook is the venv's
    # console script, without -I; the installed launcher ignores PYTHONPATH).
    fake = tmp_path / "broken" / "pika"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(broken + "\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(fake.parent), **PAM_ENV}
    run = syslog.run([HOOK, "--config", str(down)], env, timeout=HOOK_BOUND_S + 10)
    assert run.returncode == 0, run.stderr
    line = syslog.wait_for("publisher crashed")
    assert line is not None, f"no syslog line; received {syslog.received}"
    assert line.startswith("<84>"), "authpriv.warning, as the hook logs"
    assert re.search(r"loginwatch-hook\[\d+\]: publisher crashed, events stay spooled: ", line)
    assert expected in line and "pika/__init__.py:1" in line
    assert "\n" not in line.rstrip("\n")
    assert len(spooled(tmp_path)) == 1, "the event waits for a publisher that works"


def test_the_publisher_logs_why_the_spool_is_unusable(
    tmp_path: Path, down: Path, syslog: SyslogNamespace
) -> None:
    """The foreground spooled the event; then the spool became unsafe before the child ran."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **PAM_ENV}
    assert run_hook(down, timeout=HOOK_BOUND_S).returncode == 0
    (tmp_path / "spool").chmod(0o777)
    flush = subprocess.run(
        [HOOK, "--config", str(down), "flush"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert flush.returncode == 1
    assert "writable by group or others" in flush.stderr and "Traceback" not in flush.stderr
    assert syslog.run([HOOK, "--config", str(down)], env).returncode == 0
    line = syslog.wait_for("loginwatch-hook")
    assert line is not None and "event not spooled" in line


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
