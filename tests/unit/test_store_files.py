"""The SQLite store's files: modes and owners whatever the umask, and one clear line when
the store's path cannot be made (issue 9 item 8, issue 10 item 3)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.store import open_store
from schemas.errors import StoreError
from tests.support.worker_helpers import ROOT

NOBODY = 65534
CONFIG = """[store]
url = "{url}"
[smtp]
host = "127.0.0.1"
from = "loginwatch@example.org"
[[route]]
to = ["ops@example.com"]
mode = "digest"
"""


def _python_for_others() -> str:
    """An interpreter another user can start: this one, unless it sits under a private
    home (pyenv under /root); then the system's, which the venv's argv[0] still selects."""
    real = Path(os.path.realpath(sys.executable))
    if all(mode(p) & 0o001 for p in real.parents):
        return str(real)
    return "/usr/bin/python3"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is 0700, root's)."""
    made = Path(tempfile.mkdtemp(prefix="lw-store-files-"))
    made.chmod(0o755)
    yield made
    subprocess.run(["rm", "-rf", str(made)], check=True)


@pytest.mark.usefixtures("umask_022")
def test_a_new_store_is_private_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "loginwatch" / "loginwatch.db"
    with open_store(str(path)) as store:
        store.record_sent("k", datetime.now(UTC))
        names = sorted(p.name for p in path.parent.iterdir())
        assert names == ["loginwatch.db", "loginwatch.db-shm", "loginwatch.db-wal"]
        assert {p.name: mode(p) for p in path.parent.iterdir()} == dict.fromkeys(names, 0o600)
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert mode(directory) == 0o700, directory


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
@pytest.mark.usefixtures("umask_022")
def test_root_leaves_files_the_service_user_can_write(shared_dir: Path) -> None:
    """``sudo loginwatch digest --preview`` on the service user's store directory."""
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
    # ... and the service user can use it afterwards.
    script = f"from consumer.store import open_store; open_store({str(path)!r}).close()"
    done = subprocess.run([sys.executable, "-c", script], executable=_python_for_others(),
                          user=NOBODY, group=NOBODY, extra_groups=[], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_an_uncreatable_store_path_is_one_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    wanted = f"cannot create {blocker / 'loginwatch'} for the store .*: Not a directory"
    with pytest.raises(StoreError, match=wanted):
        open_store(str(blocker / "loginwatch" / "loginwatch.db"))
    (tmp_path / "is-a-dir.db").mkdir()
    with pytest.raises(StoreError, match=r"is-a-dir\.db"):
        open_store(str(tmp_path / "is-a-dir.db"))


def run_as(user: int, config: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", *command, "--config", str(config)],
        executable=_python_for_others(), user=user, group=user, extra_groups=[], cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
@pytest.mark.parametrize("command", [("worker",), ("digest", "--preview")])
def test_a_store_path_the_user_cannot_create_is_one_line(
    shared_dir: Path, command: tuple[str, ...]
) -> None:
    """The worker started by hand as the service user, /var/lib/loginwatch missing."""
    store = shared_dir / "var" / "lib" / "loginwatch" / "loginwatch.db"
    config = shared_dir / "loginwatch.toml"
    config.write_text(CONFIG.format(url=store))
    config.chmod(0o644)
    done = run_as(NOBODY, config, *command)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == (
        f"loginwatch {command[0]}: cannot create {shared_dir / 'var'} for the store {store}:"
        " Permission denied; create it, writable by the user loginwatch runs as"
        " (install-central.sh does), or set $.store.url to a path that user can write"
    )
    assert not (shared_dir / "var").exists()


@pytest.mark.parametrize("command", [("worker",), ("digest", "--preview")])
def test_a_store_under_a_file_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "file").write_text("")
    store = tmp_path / "file" / "loginwatch.db"
    config = tmp_path / "loginwatch.toml"
    config.write_text(CONFIG.format(url=store))
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", *command, "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"loginwatch {command[0]}: cannot create the store {store}: Not a directory;"
        " create it, writable by the user loginwatch runs as (install-central.sh does),"
        " or set $.store.url to a path that user can write"
    ]


def test_an_integer_beyond_64_bits_is_a_store_error(tmp_path: Path) -> None:
    """sqlite3 raises a bare OverflowError when it binds one (it took the scheduler down)."""
    with open_store(str(tmp_path / "lw.db")) as store:
        with pytest.raises(StoreError, match="a value does not fit"):
            store.db.execute("SELECT ?", (2**64 - 1,))
        with pytest.raises(StoreError, match="a value does not fit"):
            with store.db.transaction() as run:
                run("INSERT INTO delivery_log (key, delivered_at) VALUES ('k', ?)", (2**63,))
        assert store.db.execute("SELECT COUNT(*) FROM delivery_log") == [(0,)]
