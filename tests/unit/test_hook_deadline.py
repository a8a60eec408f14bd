"""The hook's deadline firing inside the spool write: the record is never lost uncounted.

The real hook runs in a subprocess whose disk is made slow at one chosen step of the
write (the call sleeps past a 1 s bound; the alarm interrupts it). The broker is
unreachable, so what the publisher does with the record is visible in the spool: it
finds the record where the write left it whole, adopts a whole temp file, removes a
partial one and spools the record again from memory. With a real slow disk and a real
broker: tests/integration/test_hook_frozen_disk.py.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producer import backlog, capture, ledger, spool
from tests.support.cpu_meter import PR_SET_CHILD_SUBREAPER
from tests.support.hookrun import (
    FAILED_PASSWORD,
    HOOK,
    PAM_ENV,
    spool_records,
    wait_for,
    write_config,
)

# The hook, with one os call made slow in the foreground only (its forked publisher
# inherits the patch, and must not be slowed), a 1 s bound and a short linger.
SCRIPT = """
import os, sys, time
from producer import hook, publisher
publisher.LINGER_S = 0.1
foreground = os.getpid()
config, call, match, slow_s, outcome = sys.argv[1:6]
real = getattr(os, call)
def slow(*args, **kwargs):
    if os.getpid() == foreground and match in repr(args):
        time.sleep(float(slow_s))  # the alarm fires in here
    return real(*args, **kwargs)
setattr(os, call, slow)
hook.FOREGROUND_BOUND_S = 1
sys.exit(hook.run_hook(config, outcome))
"""

# The hook with one import made slow in the foreground, and nothing imported ahead of it:
# the deadline fires while the settings read imports the config's parser (no cache yet),
# in the import itself, or in a class it makes (Python wraps an exception raised by a
# __set_name__ in a RuntimeError). A config that cannot be read sends the record to
# settings.DEFAULT, here one in the test's directory.
IMPORT_SCRIPT = """
import builtins, os, sys, time
from producer import hook, settings
config, module, where, default = sys.argv[1:5]
settings.DEFAULT = settings.HookSettings(default, 10, 1 << 20)
foreground = os.getpid()
real = builtins.__import__
class Slow:
    def __set_name__(self, owner, name):
        time.sleep(5)  # the alarm fires in here
def slow(name, *args, **kwargs):
    if os.getpid() == foreground and name == module:
        if where == "import":
            time.sleep(5)  # the alarm fires in here
        else:
            type("Made", (), {"field": Slow()})
    return real(name, *args, **kwargs)
builtins.__import__ = slow
hook.FOREGROUND_BOUND_S = 1
sys.exit(hook.run_hook(config, ""))
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(config: Path, call: str, match: str = "") -> tuple[float, str]:
    env = {"PATH": "/usr/bin:/bin", **PAM_ENV}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config), call, match, "5", ""],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return time.monotonic() - start, done.stderr


def _publisher_done(spool_dir: Path) -> None:
    """Wait for the detached publisher (it holds the lock while it works)."""
    with backlog.spool_lock(str(spool_dir), wait=20) as ours:
        assert ours


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F")


def _prepare(spool_dir: Path) -> None:
    spool_dir.mkdir(mode=0o700)
    with backlog.Backlog(str(spool_dir)) as spooled:
        spooled.prepare()


SLOT_CALLS = ("pwrite", "fdatasync")  # into a slot; the others write a record file


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ("pwrite", "LWCAP2"),  # before the record is in the page cache
        ("fdatasync", ""),  # written, not yet on disk
        ("fsync", ""),  # a whole temp file, not yet renamed
        ("write", "LWCAP2"),  # an empty temp file
        ("rename", ".cap.tmp"),  # synced, the rename not yet done
        ("stat", "loginwatch.toml"),  # reading the settings: the spool not known yet
    ],
    ids=["slot write", "slot sync", "temp file sync", "temp file write", "rename", "settings"],
)
def test_a_deadline_inside_the_spool_write_loses_nothing(
    config: Path, tmp_path: Path, call: str, match: str
) -> None:
    spool_dir = tmp_path / "spool"
    where = "slot" if call in SLOT_CALLS else "file"
    if where == "slot":
        _prepare(spool_dir)
    seconds, stderr = _run(config, call, match)
    assert seconds < 4, "the login did not wait for the slow disk"
    assert "foreground took longer than 1 s; the login goes on" in stderr
    # The publisher may take the lock itself (when the hook did not know its spool yet).
    assert wait_for(lambda: spool_dir.is_dir() and len(spool_records(spool_dir)) == 1, timeout=20)
    _publisher_done(spool_dir)
    [record] = spool_records(spool_dir)
    assert capture.parse(record)["PAM_USER"] == b"alice"
    assert not list(spool_dir.glob(".*.tmp")), "no temp file is left behind"
    on_file = [p.name for p in spool_dir.glob("*.cap")]
    assert len(on_file) == (0 if where == "slot" else 1)
    assert ledger.read(str(spool_dir)).total == 0, "nothing dropped"


def test_a_temp_file_an_older_hook_left_is_adopted_by_the_next_publisher(
    config: Path, tmp_path: Path
) -> None:
    """What the finding saw: ``os._exit`` between the temp file and the rename, in a hook
    that did not hand its record over; the next publisher adopts it."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    name, data = capture.record({b"PAM_TYPE": b"open_session", b"PAM_USER": b"bob"}, "", 1)
    orphan = spool_dir / f".{name}{spool.TMP_SUFFIX}"
    orphan.write_bytes(data)
    then = time.time() - backlog.ORPHAN_AGE_S - 1
    os.utime(orphan, (then, then))
    _run(config, "getuid")  # a login whose spooling is not slow
    _publisher_done(spool_dir)
    users = sorted(capture.parse(r)["PAM_USER"] for r in spool_records(spool_dir))
    assert users == [b"alice", b"bob"]
    assert not orphan.exists()


@pytest.mark.parametrize("login", [False, True], ids=["refused failure", "failure evicted"])
def test_a_drop_the_ledgers_lock_holds_past_the_deadline_is_still_counted(
    tmp_path: Path, login: bool
) -> None:
    """Hooks at once count their drops in turn, each syncing the ledger: on a loaded
    disk one may wait past its 2 s. Its deadline hands the count to a child that waits."""
    config = write_config(
        tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F", "max_events = 1"
    )
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    failure = {b"PAM_TYPE": b"auth", b"PAM_USER": b"root", b"PAM_RHOST": b"203.0.113.9"}
    name, data = capture.record(failure, "failure", 1)
    spool.write(str(spool_dir), name, data, 1, 1 << 20)  # the spool is full
    ledger.read(str(spool_dir))
    env = {"PATH": "/usr/bin:/bin", **PAM_ENV}
    if not login:
        env |= {"PAM_TYPE": "auth", "PAM_USER": "mallory"}
    held = os.open(spool_dir / ledger.FILE, os.O_RDWR)
    with backlog.spool_lock(str(spool_dir)) as ours:  # a publisher runs: no handover
        assert ours
        fcntl.flock(held, fcntl.LOCK_EX)  # another hook counting, on a slow disk
        args = ["--outcome", "failure"] if not login else []
        run = subprocess.run(
            [HOOK, "--config", str(config), *args],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
        time.sleep(0.5)
        fcntl.flock(held, fcntl.LOCK_UN)
    os.close(held)
    assert run.returncode == 0
    assert b"foreground took longer than 2 s" in run.stderr
    assert wait_for(lambda: ledger.read(str(spool_dir)).total == 1, timeout=10)
    [lost] = ledger.read(str(spool_dir)).listed
    assert lost.user == (b"root" if login else b"mallory")


# --- the deadline between two steps that must go together -------------------
# Each runs the hook with every process it leaves behind reaped (``_run_reaped``), so
# what the ledger and the spool say at the end is final: no child is still counting.


def _run_reaped(argv: list[str], env: dict[str, str]) -> str:
    """Run ``argv`` and wait for it and every process it left behind (detached ones too:
    a child subreaper adopts them); returns its stderr."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reaper
        status = 1
        try:
            os.close(read_end)
            if ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
                run = subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False)
                while True:
                    try:
                        os.wait()
                    except ChildProcessError:
                        break
                os.write(write_end, run.stderr)
                status = run.returncode
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        stderr = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert status == 0, stderr
    return stderr


def _full_spool(tmp_path: Path, slotted: bool = False) -> tuple[Path, Path]:
    """A config with ``max_events = 1`` and a spool that holds one failure already (in a
    slot, or in a file)."""
    config = write_config(
        tmp_path, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F", "max_events = 1"
    )
    spool_dir = tmp_path / "spool"
    _prepare(spool_dir) if slotted else spool_dir.mkdir(mode=0o700)
    failure = {b"PAM_TYPE": b"auth", b"PAM_USER": b"root", b"PAM_RHOST": b"203.0.113.9"}
    name, data = capture.record(failure, "failure", 1)
    spool.write(str(spool_dir), name, data, 1, 1 << 20)
    ledger.read(str(spool_dir))
    return config, spool_dir


@pytest.mark.parametrize("where", ["import", "set_name"])
def test_a_deadline_inside_an_import_leaves_the_publisher_whole_modules(
    config: Path, tmp_path: Path, where: str
) -> None:
    """The first run after a config change imports the config's parser to read its
    settings; on a loaded host every hook of a burst did it past its bound. The deadline
    fires inside that import: the publisher forked next must not inherit the module half
    made (it crashed on ImportError, and the login it held in memory was lost), and a
    deadline wrapped in another error is no broken config (the record is not sent to
    the default spool)."""
    env = {"PATH": "/usr/bin:/bin", **PAM_ENV}
    default = tmp_path / "default-spool"
    argv = [sys.executable, "-c", IMPORT_SCRIPT, str(config), "msgspec", where, str(default)]
    stderr = _run_reaped(argv, env)
    assert "foreground took longer than 1 s; the login goes on" in stderr
    spool_dir = tmp_path / "spool"
    assert [capture.parse(r)["PAM_USER"] for r in spool_records(spool_dir)] == [b"alice"]
    assert ledger.read(str(spool_dir)).total == 0
    assert not default.exists()


def test_a_deadline_while_the_ledger_syncs_counts_the_drop_once(tmp_path: Path) -> None:
    """A refused failure counted on a slow disk: the deadline fires while the ledger
    syncs. Counting and forgetting what was counted go together, the deadline held off
    in between (its child counted the drop a second time)."""
    config, spool_dir = _full_spool(tmp_path)
    env = {"PATH": "/usr/bin:/bin", **FAILED_PASSWORD}
    with backlog.spool_lock(str(spool_dir)) as ours:  # a publisher runs: the hook counts
        assert ours
        argv = [sys.executable, "-c", SCRIPT, str(config), "fdatasync", "", "1.5", "failure"]
        stderr = _run_reaped(argv, env)
    assert "foreground took longer than 1 s; the login goes on" in stderr
    assert ledger.read(str(spool_dir)).total == 1


def test_a_deadline_while_a_login_evicts_a_failure_still_counts_the_failure(
    tmp_path: Path,
) -> None:
    """A login makes room in a full spool: the deadline fires while the failure's freed
    slot syncs. Removing a record and listing it as given way go together (the failure
    was gone without a trace)."""
    config, spool_dir = _full_spool(tmp_path, slotted=True)
    env = {"PATH": "/usr/bin:/bin", **PAM_ENV}
    argv = [sys.executable, "-c", SCRIPT, str(config), "fdatasync", "", "1.5", ""]
    stderr = _run_reaped(argv, env)
    assert "foreground took longer than 1 s; the login goes on" in stderr
    assert [capture.parse(r)["PAM_USER"] for r in spool_records(spool_dir)] == [b"alice"]
    [lost] = ledger.read(str(spool_dir)).listed
    assert (lost.user, ledger.read(str(spool_dir)).total) == (b"root", 1)
