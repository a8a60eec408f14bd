"""No other user ever reads a secret or a config the install scripts write (issue 9.4).

Each script runs into a --root tree that ``nobody`` may traverse, while ``nobody``
watches it with inotify and opens every file the instant it appears
(``tests.support.secret_watch``). The secrets arrive through FIFOs, sent only once the
file they go to exists and the watcher has looked at it.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from tests.support.deploy_host import INSTALL_HOST, REPO, VENV, traversable_dir
from tests.support.secret_watch import watched_install

INSTALL_CENTRAL = REPO / "deploy" / "install-central.sh"


def host_tree() -> Path:
    root = traversable_dir() / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    return root


def test_no_other_user_reads_the_host_password_or_config_while_they_are_written(
    tmp_path: Path,
) -> None:
    root = host_tree()
    password = f"pw-{uuid.uuid4().hex}".encode()
    marker = f"config-{uuid.uuid4().hex}".encode()
    config = b'[host]\nname = "web-1"\n# ' + marker + b"\n"
    watched = watched_install(
        INSTALL_HOST,
        root,
        tmp_path,
        {"--password-file": password + b"\n", "--config": config},
        "--venv",
        VENV,
    )
    assert watched.returncode == 0, watched.output
    read = watched.read_by_other_user()
    assert password not in read, watched.opened()
    assert marker not in read, watched.opened()
    # The watcher did see them being made: it was refused, not absent.
    denied = [e["path"] for e in watched.events if e["event"] == "denied"]
    assert any("password" in path for path in denied), watched.events


def test_no_other_user_reads_the_central_config_while_it_is_written(tmp_path: Path) -> None:
    root = traversable_dir() / "central"
    root.mkdir()
    marker = f"config-{uuid.uuid4().hex}".encode()
    config = (REPO / "deploy/loginwatch-central.toml").read_bytes() + b"# " + marker + b"\n"
    watched = watched_install(INSTALL_CENTRAL, root, tmp_path, {"--config": config}, "--venv", VENV)
    assert watched.returncode == 0, watched.output
    assert marker not in watched.read_by_other_user(), watched.opened()
