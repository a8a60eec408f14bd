"""``loginwatch digest`` at its edges: what it says when it cannot work."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from consumer.digest.tables import DigestStore
from consumer.store import open_store
from tests.support.digest_support import config_text
from tests.support.worker_helpers import ROOT


def test_a_standby_that_cannot_read_its_password_file_says_so(tmp_path: Path) -> None:
    db = tmp_path / "lw.db"
    store = DigestStore(open_store(str(db)))
    assert store.acquire("other-host:1:abc", time.time(), 3600)  # the active scheduler
    store.store.close()
    config = tmp_path / "loginwatch.toml"
    missing = tmp_path / "broker.password"
    config.write_text(config_text(str(db)) + f'\n[broker]\npassword_file = "{missing}"\n')
    standby = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "digest", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert standby.returncode == 1
    [line] = standby.stderr.strip().splitlines()
    assert line.startswith("loginwatch digest: $.broker.password_file")
    assert str(missing) in line
