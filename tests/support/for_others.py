"""This checkout's central side, runnable by another user (``nobody``) wherever it is cloned.

A clone under a private home (``/root``, mode 0700) is out of another user's reach, and so is
its venv. ``runnable_copy()`` copies what the central side imports, the checkout's packages
and the distributions requirements/central.txt pins (from this venv), into a directory every
user can enter, and names an interpreter they can start: this one, or the system's python3
(the same minor version, so compiled extensions load) when this one sits in a private home.

    with runnable_copy() as others:
        subprocess.run([*others.python, "-m", "consumer.cli", ...], env=others.env,
                       cwd=others.root, user=65534, ...)
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "producer", "consumer")


@dataclass(frozen=True)
class Runnable:
    root: Path
    python: list[str]
    env: dict[str, str]


def _reachable(path: Path) -> bool:
    """True when every directory on the way to ``path`` lets others through."""
    return all(stat.S_IMODE(p.stat().st_mode) & 0o001 for p in path.parents)


def _interpreter() -> list[str]:
    real = Path(os.path.realpath(sys.executable))
    if _reachable(real):
        return [str(real)]
    return [f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]


def _central_distributions() -> list[str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==", (REPO / "requirements" / "central.txt").read_text(),
                      re.M)  # fmt: skip
    return pins


@contextmanager
def runnable_copy() -> Iterator[Runnable]:
    """A copy of the central side (code and its pinned distributions) that any user can run,
    removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="loginwatch-for-others-"))
    try:
        root.chmod(0o755)
        code, site = root / "code", root / "site"
        for package in PACKAGES:
            shutil.copytree(REPO / package, code / package,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        for name in _central_distributions():
            try:
                files = metadata.distribution(name).files or []
            except metadata.PackageNotFoundError:
                continue  # pinned for another Python (a marker)
            for file in files:
                source = Path(str(file.locate()))
                if source.is_file() and "__pycache__" not in file.parts:
                    target = site / file
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{code}:{site}",
               "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
        yield Runnable(code, _interpreter(), env)
    finally:
        shutil.rmtree(root, ignore_errors=True)
