"""The installers against a careless operator: what they make stays root's alone."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy_host import INSTALL_HOST, REPO, VENV

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
    sshd = root / "etc/pam.d/sshd"
    proc = subprocess.run(
        ["sh", "-c", f'. "{PAM_SH}"; pam_user_env "$@"', "sh", str(root), str(sshd)],
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
    ids=[
        "missing dir in a 0777 dir",
        "missing file in a 0777 dir",
        "missing dir in /tmp-like",
        "other user's grandparent",
    ],
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


def host_tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    return root


def install(root: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(INSTALL_HOST), "--root", str(root), *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_uninstall_keeps_the_line_the_operator_fixed_after_a_run_that_failed(
    tmp_path: Path,
) -> None:
    root = host_tree(tmp_path)
    sshd = root / "etc/pam.d/sshd"
    pristine = sshd.read_bytes()
    sshd.write_bytes(pristine + b"session required pam_tpyo.so\n")  # a typo: the check refuses
    first = install(root, "--venv", VENV)
    assert first.returncode == 1 and "pam_tpyo.so not found" in first.stderr
    sshd.write_bytes(pristine)  # the operator fixes it and runs the script again
    assert install(root, "--venv", VENV).returncode == 0
    assert install(root, "--uninstall").returncode == 0
    # The old script kept the original of the failed run: --uninstall put the typo back,
    # and with `required` no one could log in any more.
    assert sshd.read_bytes() == pristine


def test_uninstall_keeps_an_edit_made_between_two_runs(tmp_path: Path) -> None:
    # Held on the old script too (the second run found nothing to change): a guard
    # for the original the install now takes from the live file.
    root = host_tree(tmp_path)
    sshd = root / "etc/pam.d/sshd"
    assert install(root, "--venv", VENV).returncode == 0
    edited = sshd.read_bytes() + b"session optional pam_motd.so noupdate\n"
    sshd.write_bytes(edited)
    assert install(root, "--venv", VENV).returncode == 0
    assert install(root, "--uninstall").returncode == 0
    assert sshd.read_bytes().endswith(b"session optional pam_motd.so noupdate\n")
    assert b"loginwatch" not in sshd.read_bytes()


@pytest.mark.parametrize(
    "venv",
    ["/opt/login watch", "/opt/lw\nimport os; os.system('id > /tmp/pwned')\n#", "opt/relative"],
    ids=["space", "newline", "relative"],
)
def test_a_venv_path_that_cannot_be_a_hash_bang_line_is_refused(tmp_path: Path, venv: str) -> None:
    root = host_tree(tmp_path)
    before = (root / "etc/pam.d/sshd").read_bytes()
    proc = install(root, "--venv", venv)
    assert proc.returncode == 1
    assert "--venv" in proc.stderr and "not a plain absolute path" in proc.stderr
    assert not (root / "usr/local/sbin/loginwatch-hook").exists()
    assert (root / "etc/pam.d/sshd").read_bytes() == before


def test_a_spool_dir_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    # The hook never follows a symlinked spool: every event would be "not spooled".
    # The old script refused it too, but said "mode 777" (the link's own mode).
    root = host_tree(tmp_path)
    real = root / "srv/spool"
    real.mkdir(parents=True)
    real.chmod(0o700)
    (root / "var/spool").mkdir(parents=True)
    (root / "var/spool/loginwatch").symlink_to(real)
    proc = install(root, "--venv", VENV)
    assert proc.returncode == 1
    assert "[spool] dir /var/spool/loginwatch is a symlink" in proc.stderr


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(p.relative_to(root)): (
            p.lstat().st_mode,
            p.lstat().st_uid,
            p.read_bytes() if p.is_file() and not p.is_symlink() else b"",
        )
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    "how",
    [
        "symlink to a user's file",
        "a 0666 file",
        "in a 0777 directory",
        "symlink to a 0777 directory",
    ],
)
def test_a_pam_file_of_the_stack_someone_else_can_write_is_refused_and_nothing_changes(
    tmp_path: Path, how: str
) -> None:
    # They could add any line later: `auth optional pam_env.so user_readenv=1`, whose
    # LD_PRELOAD the root hook would load, or a pam_exec of their own.
    root = host_tree(tmp_path)
    site = root / "etc/pam.d/site-auth"
    shared = root / "srv/shared"
    shared.mkdir(parents=True)
    text = "auth optional pam_permit.so\n"
    if how == "symlink to a user's file":
        (shared / "site-auth").write_text(text)
        os.chown(shared / "site-auth", 4242, 4242)
        site.symlink_to("../../srv/shared/site-auth")
    elif how == "a 0666 file":
        site.write_text(text)
        site.chmod(0o666)
    elif how == "in a 0777 directory":
        (root / "etc/pam.d").chmod(0o777)
        site.write_text(text)
    else:
        shared.chmod(0o777)
        (shared / "site-auth").write_text(text)
        site.symlink_to("../../srv/shared/site-auth")
    sshd = root / "etc/pam.d/sshd"
    sshd.write_text("auth include site-auth\n" + sshd.read_text())
    before = tree_snapshot(root)
    proc = install(root, "--venv", VENV)
    assert proc.returncode == 1
    where = (
        "/etc/pam.d/sshd"
        if how == "in a 0777 directory"
        else "/etc/pam.d/sshd:1: /etc/pam.d/site-auth"
    )
    assert (
        f"refusing to install, nothing changed: {where} is a PAM file others than root can write:"
        in proc.stderr
    )
    assert tree_snapshot(root) == before


def test_a_pam_file_symlinked_to_roots_own_file_installs(tmp_path: Path) -> None:
    # Fedora's authselect: /etc/pam.d/system-auth -> /etc/authselect/system-auth, root's.
    root = host_tree(tmp_path)
    (root / "etc/authselect").mkdir()
    (root / "etc/authselect/system-auth").write_text("auth optional pam_permit.so\n")
    (root / "etc/pam.d/system-auth").symlink_to("../authselect/system-auth")
    sshd = root / "etc/pam.d/sshd"
    sshd.write_text("auth include system-auth\n" + sshd.read_text())
    proc = install(root, "--venv", VENV, "--no-failures")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("marker", "which"),
    [
        ("# <<< loginwatch", 0),
        ("# <<< loginwatch", -1),
        ("# >>> loginwatch", 0),
        ("# >>> loginwatch", -1),
    ],
    ids=["first end", "last end", "first begin", "last begin"],
)
def test_a_marker_line_deleted_by_hand_stops_the_scripts_before_they_cut_the_stack(
    tmp_path: Path, marker: str, which: int
) -> None:
    # The old pam_strip dropped everything from a begin line to the next end line:
    # without the first end line, a re-run (or --uninstall) wrote a PAM file
    # without pam_nologin, common-account, pam_limits … and said "updated".
    root = host_tree(tmp_path)
    assert install(root, "--venv", VENV).returncode == 0
    sshd = root / "etc/pam.d/sshd"
    lines = sshd.read_text().splitlines(keepends=True)
    del lines[[i for i, line in enumerate(lines) if line.startswith(marker)][which]]
    sshd.write_text("".join(lines))
    broken = sshd.read_bytes()
    for args in (("--venv", VENV), ("--check",), ("--uninstall",)):
        proc = install(root, *args)
        assert proc.returncode == 1, args
        assert "put the marker line back" in proc.stderr, args
        assert sshd.read_bytes() == broken, args
