"""The SQLite store's files: modes whatever the umask, and one clear line when the store's
path cannot be made (issue 9 item 8, issue 10 item 3). As another user:
tests/integration/store/test_store_files_as_others.py."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.store import open_store
from schemas.errors import StoreError
from tests.support.worker_helpers import ROOT, store_only_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


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


def test_an_uncreatable_store_path_is_one_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    wanted = f"cannot create {blocker / 'loginwatch'} for the store .*: Not a directory"
    with pytest.raises(StoreError, match=wanted):
        open_store(str(blocker / "loginwatch" / "loginwatch.db"))
    (tmp_path / "is-a-dir.db").mkdir()
    with pytest.raises(StoreError, match=r"is-a-dir\.db"):
        open_store(str(tmp_path / "is-a-dir.db"))


@pytest.mark.parametrize("command", [("worker",), ("digest", "--preview")])
def test_a_store_under_a_file_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "file").write_text("")
    store = tmp_path / "file" / "loginwatch.db"
    config = tmp_path / "loginwatch.toml"
    config.write_text(store_only_config(store))
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
