"""The C front-end (producer/native) as the tests run it: built, and installed beside the
venv's python, where it finds the interpreter for its publisher and its Python fallback.

``native_hook()`` builds ``producer/native/out/ARCH/loginwatch-hook`` with its own Makefile
(every warning and hardening flag, static-pie) when it is missing or older than its sources,
and copies it to ``loginwatch-hook-native`` in the venv's bin (atomically, under a lock: test
processes run side by side). Without gcc it skips locally and fails under CI.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.services import missing

SOURCE = Path(__file__).resolve().parents[2] / "producer" / "native"
INSTALLED = Path(sys.executable).with_name("loginwatch-hook-native")


def built(arch: str = "") -> Path:
    """The front-end for ``arch`` (this machine's by default), built if it is stale."""
    arch = arch or platform.machine()
    binary = SOURCE / "out" / arch / "loginwatch-hook"
    sources = [*SOURCE.glob("*.[ch]"), SOURCE / "Makefile"]
    newest = max(p.stat().st_mtime for p in sources)
    if binary.exists() and binary.stat().st_mtime >= newest:
        return binary
    if shutil.which("make") is None or shutil.which("gcc") is None:
        missing("gcc and make, to build producer/native (apt-get install gcc make)")
    (SOURCE / "out").mkdir(exist_ok=True)
    with open(SOURCE / "out" / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "-s", "-C", str(SOURCE), f"ARCH={arch}"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return binary


def native_hook() -> str:
    """The path of the installed front-end, beside the venv's python."""
    binary = built()
    data = binary.read_bytes()
    if not INSTALLED.exists() or INSTALLED.read_bytes() != data:
        tmp = INSTALLED.with_name(f".{INSTALLED.name}.{os.getpid()}")
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        os.replace(tmp, INSTALLED)
    return str(INSTALLED)
