"""The installers against a careless operator: what they make stays root's alone."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy_host import INSTALL_HOST, REPO, VENV

INSTALL_CENTRAL = REPO / "deploy" / "install-central.sh"


def run_under_umask(mask: str, script: Path, *args: str | Path) -> str:
    proc = subprocess.run(
        ["sh", "-c", f'umask {mask} && exec sh "$@"', "sh", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def writable_by_others(root: Path, skip: Path) -> list[str]:
    """Paths under ``root`` (not below ``skip``) that group or others may write."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or path.is_relative_to(skip):
            continue
        mode = path.lstat().st_mode
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return found


@pytest.mark.parametrize("script", [INSTALL_HOST, INSTALL_CENTRAL], ids=["host", "central"])
def test_an_install_under_umask_000_leaves_nothing_another_user_can_write(
    tmp_path: Path, script: Path
) -> None:
    # umask 000: /usr/local/sbin (the hook PAM runs as root), /etc/loginwatch (its
    # config), /etc/systemd/system came out 0777, and the state files 0666.
    root = tmp_path / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    password = tmp_path / "issued.password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    args: list[str | Path] = ["--root", root, "--venv", VENV]
    if script == INSTALL_HOST:
        args += ["--password-file", password]
    run_under_umask("000", script, *args)
    assert writable_by_others(root, skip=root / "etc" / "pam.d") == []
    assert stat.S_IMODE((root / "etc" / "pam.d" / "sshd").stat().st_mode) == stat.S_IMODE(
        Path("/etc/pam.d/sshd").stat().st_mode
    )


PAM_SH = REPO / "deploy" / "lib" / "pam.sh"


def pam_user_env(root: Path) -> list[str]:
    """What pam.sh's pam_user_env reports for ROOT/etc/pam.d/sshd: the text it found."""
    proc = subprocess.run(
        ["sh", "-c", f'. "{PAM_SH}"; pam_user_env "$@"', "sh", str(root), str(root / "etc/pam.d/sshd")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t")[2] for line in proc.stdout.splitlines()]


def env_tree(tmp_path: Path, arg: str) -> Path:
    root = tmp_path / "root"
    (root / "etc/pam.d").mkdir(parents=True)
    (root / "etc/pam.d/sshd").write_text(f"auth optional pam_env.so user_readenv=0 {arg}\n")
    for name in ("etc/security/pam_env.conf", "etc/environment"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


@pytest.mark.parametrize(
    ("arg", "make"),
    [
        # pam_env reads a file that is not there yet: whoever may create it writes root's env.
        ("conffile=/pub/site/env.conf", lambda r: (r / "pub").mkdir(mode=0o777)),
        ("conffile=/pub/env.conf", lambda r: (r / "pub").mkdir(mode=0o777)),
        ("readenv=1 envfile=/pub/new/environment", lambda r: (r / "pub").mkdir(mode=0o1777)),
        # Root's file two levels below another user's directory: they rename its parent away.
        ("conffile=/srv/theirs/conf/env.conf", "theirs"),
    ],
    ids=["missing dir in a 0777 dir", "missing file in a 0777 dir", "missing dir in /tmp-like", "other user's grandparent"],
)
def test_a_pam_env_file_someone_else_can_create_or_swap_is_the_users(
    tmp_path: Path, arg: str, make: object
) -> None:
    root = env_tree(tmp_path, arg)
    if make == "theirs":
        conf = root / "srv/theirs/conf"
        conf.mkdir(parents=True)
        (conf / "env.conf").write_text("")
        os.chown(root / "srv/theirs", 4242, 4242)
    else:
        assert callable(make)
        make(root)
        (root / "pub").chmod((root / "pub").stat().st_mode & 0o7777 | 0o777)
    path = arg.rsplit("=", 1)[1]
    assert pam_user_env(root) == [f"{path}, which others than root can write"]


def test_a_roots_file_in_a_sticky_dir_and_roots_own_paths_are_fine(tmp_path: Path) -> None:
    root = env_tree(tmp_path, "conffile=/pub/env.conf")
    (root / "pub").mkdir()
    (root / "pub").chmod(0o1777)
    (root / "pub/env.conf").write_text("")  # root's: no one else may replace it there
    assert pam_user_env(root) == []
