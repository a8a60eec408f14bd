"""``[store] password_file`` against a real PostgreSQL that asks for a password (SCRAM).

A private instance (tests/support/pg_server.py) on loopback: the machine's own PostgreSQL
trusts local sockets, so it could not tell a right password from a wrong one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.store import open_store
from schemas.config import parse_config, store_password
from schemas.errors import StoreError
from tests.support.pg_server import PgServer, write_secret
from tests.support.worker_helpers import ROOT


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with PgServer("127.0.0.1") as server:
        yield server


def config_for(pg: PgServer, password_file: Path) -> str:
    return f'[store]\nurl = "{pg.url}"\npassword_file = "{password_file}"\n'


def test_the_store_connects_with_the_password_from_the_file(pg: PgServer, tmp_path: Path) -> None:
    config = parse_config(config_for(pg, pg.password_file(tmp_path / "store.password")))
    with open_store(config.store.url, password=store_password(config.store)) as store:
        assert store.db.execute("SELECT current_user") == [("loginwatch",)]
        assert store.db.execute("SELECT max(version) FROM loginwatch_schema")[0][0] >= 1


def test_without_the_file_the_server_refuses(pg: PgServer) -> None:
    with pytest.raises(StoreError, match=r"no password supplied|password authentication failed"):
        open_store(pg.url + "?connect_timeout=5")


def test_a_wrong_password_is_one_clear_line_from_the_worker(pg: PgServer, tmp_path: Path) -> None:
    wrong = write_secret(tmp_path / "store.password", "not-the-password\n")
    toml = tmp_path / "loginwatch.toml"
    toml.write_text(config_for(pg, wrong) + "[enrich]\ndns = false\n")
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "worker", "--config", str(toml)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "loginwatch worker: cannot connect to the PostgreSQL store"
        " (password from $.store.password_file): "
    )
    assert 'password authentication failed for user "loginwatch"' in line
    assert "not-the-password" not in done.stderr + done.stdout
    assert pg.password not in done.stderr + done.stdout
