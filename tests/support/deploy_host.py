"""A host installed by ``deploy/install-host.sh --root``, run in a private namespace.

``InstalledHost`` copies /etc (plus a test user with a known password), runs the
install script into that copy, and runs commands (pamtester, sshd) with the copy
bind-mounted over /etc and the installed /usr/local/sbin over the real one, in a
mount namespace of their own: what they see is exactly what the install script
would leave on a real host, and the machine's own files are never touched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support.sshd import TEST_UID, PamNamespace

REPO = Path(__file__).resolve().parents[2]
INSTALL_HOST = REPO / "deploy" / "install-host.sh"
VENV = Path(sys.executable).parent.parent
HOOK_PATH = "/usr/local/sbin/loginwatch-hook"
# Where install-host.sh puts the host config (the central side has loginwatch.toml).
HOST_CONFIG = "/etc/loginwatch/host.toml"


def run_install(*args: str | Path, script: Path = INSTALL_HOST) -> str:
    """Run an install script; returns its output.

    Raises:
        AssertionError: the script failed (its output in the message).
    """
    proc = subprocess.run(
        ["sh", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        # A venv made with pip and the host lock's wheels: about 20 s on a quiet machine,
        # past 120 s seen at a load average of 25 (CI shares its cores).
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def traversable_dir() -> Path:
    """A fresh directory any user may traverse, removed when the test process exits."""
    path = Path(tempfile.mkdtemp(prefix="loginwatch-pam-"))
    path.chmod(0o755)
    atexit.register(shutil.rmtree, path, True)
    return path


class InstalledHost:
    """/etc copied to ``base/root/etc``, with loginwatch installed into ``base/root``."""

    def __init__(
        self,
        base: Path,
        config: str,
        *install_args: str,
        edit_etc: Callable[[Path], None] | None = None,
        venv: Path | None = VENV,
    ) -> None:
        """``venv=None``: the script creates its own venv in /opt/loginwatch-host (pip)."""
        # pam_env reads ~/.pam_environment as the user, who must be able to reach
        # it: pytest's own tmp directories are root's alone.
        self.ns = PamNamespace(traversable_dir() / "ns")
        self.root = base / "root"
        shutil.copytree("/etc", self.root / "etc", symlinks=True)
        for name in ("passwd", "group", "shadow"):
            shutil.copy2(self.ns.root / name, self.root / "etc" / name)
        if edit_etc is not None:
            edit_etc(self.root / "etc")
        self.config = base / "host.toml"
        self.config.write_text(config)
        venv_args = ("--venv", str(venv)) if venv is not None else ()
        self.output = run_install(
            "--root", self.root, *venv_args, "--config", self.config, *install_args
        )
        self.pam_file = self.root / "etc" / "pam.d" / "sshd"
        self.hook = self.root / HOOK_PATH.lstrip("/")
        self.config_path = self.root / HOST_CONFIG.lstrip("/")

    def mounts(self) -> str:
        mounts = (
            f"mount --bind {self.root}/etc /etc\n"
            f"mount --bind {self.root}/usr/local/sbin /usr/local/sbin\n"
        )
        if (self.root / "opt").is_dir():
            mounts += f"mount --bind {self.root}/opt /opt\n"
        return mounts

    def run(self, command: str, stdin: str = "", timeout: float = 30) -> tuple[int, str]:
        return self.ns.run(self.mounts() + command, stdin=stdin, timeout=timeout)

    def authenticate(self, user: str, password: str, rhost: str = "192.0.2.7") -> int:
        """``pamtester sshd USER authenticate`` with the installed stack; its exit status."""
        status, _ = self.run(
            f"pamtester -I rhost={rhost} sshd {user} authenticate", stdin=password + "\n"
        )
        return status

    def session(self) -> tuple[int, str]:
        """Open and close a session of the test user with the installed stack."""
        return self.run("pamtester -v sshd lwtest open_session close_session")

    def set_hook(self, script: str | None) -> None:
        """Replace the installed hook by ``script`` (None: remove it)."""
        self.hook.unlink(missing_ok=True)
        if script is not None:
            self.hook.write_text(script)
            os.chmod(self.hook, 0o755)

    def user_pam_environment(self, text: str) -> None:
        """What the test user writes into ~/.pam_environment."""
        path = self.ns.home / ".pam_environment"
        path.write_text(text)
        os.chown(path, TEST_UID, TEST_UID)


def pam_tree(tmp_path: Path) -> Path:
    """A host tree under ``tmp_path`` with a copy of this machine's /etc/pam.d, for an
    installer's ``--root``."""
    tree = tmp_path / "root"
    shutil.copytree("/etc/pam.d", tree / "etc" / "pam.d", symlinks=True)
    return tree
