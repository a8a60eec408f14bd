"""The SQLite store's files as the service user meets them (issue 9 item 8, issue 10 item 3):
root leaves files the user can write, and a path the user cannot create is one line. The
user is ``nobody``, running a copy of this checkout any user can reach
(tests/support/for_others.py: a clone under /root is not), as root makes it run."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.store import open_store
from tests.support.for_others import Runnable, runnable_copy
from tests.support.services import missing
from tests.support.worker_helpers import store_only_config

NOBODY = 65534


@pytest.fixture(scope="module")
def others() -> Iterator[Runnable]:
    if os.geteuid() != 0:
        missing("root, to run code as another user")
    with runnable_copy() as copy:
        yield copy


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is 0700, root's)."""
    made = Path(tempfile.mkdtemp(prefix="lw-store-files-"))
    made.chmod(0o755)
    yield made
    subprocess.run(["rm", "-rf", str(made)], check=True)


def run_as(others: Runnable, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*others.python, *argv], env=others.env, cwd=others.root, user=NOBODY, group=NOBODY,
        extra_groups=[], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_root_leaves_files_the_service_user_can_write(shared_dir: Path, others: Runnable) -> None:
    """``sudo loginwatch digest --preview`` on the service user's store directory."""
    old = os.umask(0o022)
    try:
        state = shared_dir / "state"
        state.mkdir(mode=0o750)
        os.chown(state, NOBODY, NOBODY)
        path = state / "sub" / "loginwatch.db"
        with open_store(str(path)) as store:
            store.record_sent("k", datetime.now(UTC))
            made = [path.parent, *path.parent.iterdir()]
            assert len(made) == 4  # sub/, the db, -wal, -shm
            assert {(p.name, p.stat().st_uid, p.stat().st_gid) for p in made} == {
                (p.name, NOBODY, NOBODY) for p in made
            }
    finally:
        os.umask(old)
    # ... and the service user can use it afterwards.
    script = f"from consumer.store import open_store; open_store({str(path)!r}).close()"
    done = run_as(others, "-c", script)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("command", [("worker",), ("digest", "--preview")])
def test_a_store_path_the_user_cannot_create_is_one_line(
    shared_dir: Path, others: Runnable, command: tuple[str, ...]
) -> None:
    """The worker started by hand as the service user, /var/lib/loginwatch missing."""
    store = shared_dir / "var" / "lib" / "loginwatch" / "loginwatch.db"
    config = shared_dir / "loginwatch.toml"
    config.write_text(store_only_config(store))
    config.chmod(0o644)
    done = run_as(others, "-m", "consumer.cli", *command, "--config", str(config))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == (
        f"loginwatch {command[0]}: cannot create {shared_dir / 'var'} for the store {store}:"
        " Permission denied; create it, writable by the user loginwatch runs as"
        " (install-central.sh does), or set $.store.url to a path that user can write"
    )
    assert not (shared_dir / "var").exists()
