"""The config file itself: used only when no one but root (or its reader) can change it.

The hook, as root, takes from the config where to spool, which broker to tell
and which file to send as the broker password. A config another user can write
(or swap, in a directory they can write) lets them silence the alerts about
their own logins, or make root read and send another root-only file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer import settings
from schemas.config import load_config
from schemas.errors import ConfigError
from schemas.files import CONFIG_LIMIT
from schemas.nodes import broker_url
from tests.support.deploy_host import traversable_dir
from tests.support.hookrun import HOOK

OTHER_UID = 4242
CONFIG = '[broker]\nurl = "amqp://127.0.0.1/"\n[spool]\ndir = "/var/tmp/loginwatch-evil"\n'


def config_in(directory: Path, mode: int = 0o600) -> Path:
    path = directory / "host.toml"
    path.write_text(CONFIG)
    path.chmod(mode)
    return path


def other_users_dir(base: Path, mode: int = 0o755) -> Path:
    directory = base / "theirs"
    directory.mkdir()
    os.chown(directory, OTHER_UID, OTHER_UID)
    directory.chmod(mode)
    return directory


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602, 0o660], ids=oct)
def test_a_config_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = config_in(tmp_path, mode)
    assert refused(path) == (
        f"{path}: cannot use config: {path} is writable by group or others"
        f" (mode {mode:04o}): chmod go-w {path}"
    )


def test_a_config_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = config_in(tmp_path)
    os.chown(path, OTHER_UID, OTHER_UID)  # 0600, but they may chmod and rewrite it
    assert refused(path) == (
        f"{path}: cannot use config: {path} is owned by uid {OTHER_UID}, not by root:"
        f" chown root {path}"
    )


@pytest.mark.parametrize("case", ["dir writable by all", "dir of another user", "symlink into it"])
def test_a_config_someone_else_can_swap_is_refused(tmp_path: Path, case: str) -> None:
    if case == "dir writable by all":
        directory = tmp_path / "shared"
        directory.mkdir()
        directory.chmod(0o777)  # not sticky: anyone may rename host.toml away
        path = config_in(directory)
        why = f"{directory} is writable by group or others (mode 0777)"
    else:
        directory = other_users_dir(tmp_path)
        target = config_in(directory)  # root's file, in their directory
        why = f"{directory} is owned by uid {OTHER_UID}, not by root"
        path = target
        if case == "symlink into it":
            path = tmp_path / "host.toml"
            path.symlink_to(target)
    assert why in refused(path)


def test_a_config_in_a_sticky_directory_is_fine_when_it_is_roots(tmp_path: Path) -> None:
    directory = tmp_path / "sticky"
    directory.mkdir()
    directory.chmod(0o1777)  # like /tmp: no one replaces an entry they do not own
    assert load_config(config_in(directory)).spool.dir == "/var/tmp/loginwatch-evil"


def test_a_central_config_the_service_group_reads_is_fine(tmp_path: Path) -> None:
    path = config_in(traversable_dir(), 0o640)
    os.chown(path, 0, OTHER_UID)  # root:loginwatch 0640, as install-central.sh writes it
    assert load_config(path).spool.dir == "/var/tmp/loginwatch-evil"


def test_a_fifo_as_config_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "host.toml"
    os.mkfifo(fifo, 0o600)
    # In a child: on the old code the open blocked forever (no writer).
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from schemas.config import load_config;"
         " load_config(sys.argv[1])", str(fifo)],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"{fifo}: cannot read config: not a regular file" in proc.stderr


def test_a_huge_file_is_no_config(tmp_path: Path) -> None:
    path = tmp_path / "host.toml"
    path.write_bytes(b"# " + b"x" * CONFIG_LIMIT + b"\n")
    assert refused(path) == f"{path}: longer than {CONFIG_LIMIT} bytes: not a loginwatch config"


def test_the_hook_takes_no_spool_from_a_config_others_can_write(tmp_path: Path) -> None:
    path = config_in(tmp_path, 0o666)
    with pytest.raises(ConfigError, match="writable by group or others"):
        settings.load(str(path), cache=False)
    proc = subprocess.run(
        [HOOK, "--config", str(path), "flush"],
        capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "writable by group or others" in proc.stderr
    assert not Path("/var/tmp/loginwatch-evil").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[spool]\ndir = "spool"', "$.spool: dir 'spool' is not an absolute path"),
        ('[spool]\ndir = ""', "$.spool: dir '' is not an absolute path"),
        (
            '[broker]\nurl = "amqp://127.0.0.1/"\npassword_file = "etc/host.password"',
            "$.broker: password_file 'etc/host.password' is not an absolute path",
        ),
        (
            '[broker]\nurl = "amqps://mq.example.org/"\nca_file = "ca.pem"',
            "$.broker: ca_file 'ca.pem' is not an absolute path",
        ),
        (
            '[smtp]\npassword_file = "smtp.pw"',
            "$.smtp: password_file 'smtp.pw' is not an absolute path",
        ),
    ],
    ids=["spool", "empty spool", "broker password", "broker ca", "smtp password"],
)
def test_a_relative_path_in_the_config_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    # The hook resolves it from sshd's /, `check-config` and `loginwatch-hook spool`
    # from the operator's directory: a different file for each.
    path = tmp_path / "host.toml"
    path.write_text(text + "\n")
    assert refused(path).startswith(f"{path}: {expected}")


@pytest.mark.parametrize("how", ["dir writable by all", "symlink from such a dir"])
def test_a_secret_someone_else_can_swap_is_refused(tmp_path: Path, how: str) -> None:
    # They could put a symlink to another root-only file there (an ssh host key, a
    # database password): root would send its first line to the broker as the password.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    secret = tmp_path / "host.password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    if how == "dir writable by all":
        secret = secret.rename(shared / "host.password")
    else:
        (shared / "pw").symlink_to(secret)
        secret = shared / "pw"
        # realpath leads out of the shared dir: fine; the link itself sits in it.
    config = tmp_path / "host.toml"
    config.write_text(f'[broker]\nurl = "amqp://u@127.0.0.1/"\npassword_file = "{secret}"\n')
    config.chmod(0o600)
    with pytest.raises(ConfigError, match=r"\$\.broker\.password_file: .*writable by group"):
        broker_url(load_config(config).broker)
