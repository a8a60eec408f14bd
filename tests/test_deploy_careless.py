"""The installers against a careless operator: what they make stays root's alone."""

from __future__ import annotations

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
