"""A lean launcher for the PAM hook: ``python -IS`` with the right ``sys.path``.

pip's console-script wrapper starts the interpreter with ``site``, which reads
every ``.pth`` file of the environment (an editable install's finder alone
costs ~8 ms) on every login. The launcher skips ``site`` and puts exactly the
directories that hold loginwatch and its two host dependencies on the path.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# What the hook and its detached publisher import from outside the stdlib.
_PACKAGES = ("producer", "schemas", "pika", "msgspec")


def search_path() -> list[str]:
    """The directories holding the hook's packages, in import order, without repeats."""
    dirs: list[str] = []
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"cannot find the {name} package")
        parent = str(Path(next(iter(spec.submodule_search_locations))).parent)
        if parent not in dirs:
            dirs.append(parent)
    return dirs


def launcher_text(python: str | None = None) -> str:
    return (
        f"#!{python or sys.executable} -IS\n"
        "# loginwatch PAM hook launcher, written by `loginwatch-hook install-launcher`.\n"
        "import sys\n"
        f"sys.path[:0] = {search_path()!r}\n"
        "from producer.hook import main\n"
        "raise SystemExit(main())\n"
    )


def install(path: str) -> None:
    """Write the launcher to ``path`` atomically, mode 0755, owned by the caller."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(launcher_text())
    os.chmod(tmp, 0o755)  # noqa: S103 - an executable every user may run, only root may write
    os.rename(tmp, path)
