"""Another Debian release's root file system, to run the host side under its own Python.

    with unpacked("11") as debian:                 # Debian 11: python3 3.9.2
        debian.run(["python3", "--version"])       # inside: chroot, own mount namespace
        debian.run([...], binds={REPO: "/src"})    # the checkout, read-only, at /src

Each release is debootstrapped once from Debian's mirror by ``make chroots``
(tests/tools/build-chroot.sh) and cached as a tarball in ``$LOGINWATCH_CACHE/chroots``
(default ``~/.cache/loginwatch``, outside every checkout, so all clones share it).
``unpacked`` unpacks a fresh copy per use, so nothing a test does survives it. A missing
tarball skips locally and fails under CI (``services.missing``); a release the mirror no
longer serves skips everywhere, with the one line the build left in ``debian-N.unavailable``.

Every command runs through ``unshare -m``: /proc, /dev and the binds are mounted in a mount
namespace of its own, which disappears with the command, so nothing is ever left mounted and
the machine's own files are never touched. The network is the caller's (the broker on
127.0.0.1 is reachable), unless ``netns`` names a namespace to run in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import missing

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LOGINWATCH_CACHE", Path.home() / ".cache" / "loginwatch"))
# What each cached release is for (tests/tools/build-chroot.sh installs what it needs).
PYTHONS = {"11": "3.9", "13": "3.13", "12": "3.11"}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs inside `unshare -m` as root: mounts, then becomes the chroot's process.
# Arguments: ROOT, then SRC DST MODE triples up to "--", then the command.
_ENTER = r"""
set -eu
root=$1; shift
# The root a mount point of its own: `unshare -m` inside (the tests' sshd) needs one.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t sysfs -o ro sysfs "$root/sys"
while [ "$1" != -- ]; do
    mkdir -p "$root$2"
    mount --bind "$1" "$root$2"
    [ "$3" = rw ] || mount -o remount,bind,ro "$root$2"
    shift 3
done
shift
exec chroot "$root" "$@"
"""


def tarball(release: str) -> Path:
    return CACHE / "chroots" / f"debian-{release}.tar.gz"


def require(release: str) -> Path:
    """The cached tarball of ``release``; skips (fails under CI) when it is not built.

    A release that Debian's mirror no longer serves skips everywhere with the build's line:
    that is news about the mirror, not a fault of the code under test.
    """
    gone = tarball(release).with_suffix("").with_suffix(".unavailable")
    if gone.exists():
        pytest.skip(gone.read_text().strip())
    path = tarball(release)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        missing("root and unshare (util-linux), to enter a chroot")
    if not path.exists():
        missing(f"the Debian {release} chroot {path} (make chroots)")
    return path


@dataclass
class Chroot:
    """An unpacked root file system of Debian ``release`` at ``root``."""

    root: Path
    release: str

    @property
    def python(self) -> str:
        return PYTHONS[self.release]

    def path(self, inside: str) -> Path:
        """Where ``inside`` (an absolute path in the chroot) is on this machine."""
        return self.root / inside.lstrip("/")

    def argv(
        self,
        command: Sequence[str],
        *,
        binds: Mapping[Path | str, str] | None = None,
        writable: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        netns: str | None = None,
        cwd: str = "/",
    ) -> list[str]:
        """The command line that runs ``command`` inside, as root with a clean environment.

        ``binds`` maps a path here to a path inside, read-only unless the inside path is in
        ``writable``; ``env`` is all the environment the command gets besides PATH, HOME,
        LANG; ``netns`` an ``ip netns`` namespace to run in.
        """
        mounts: list[str] = []
        for source, target in (binds or {}).items():
            mounts += [str(source), target, "rw" if target in writable else "ro"]
        environ = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        inner = ["/usr/bin/env", "-i", "-C", cwd] if cwd != "/" else ["/usr/bin/env", "-i"]
        argv = [
            "unshare", "-m", "--propagation", "private", "sh", "-c", _ENTER, "enter",
            str(self.root), *mounts, "--",
            *inner, *(f"{k}={v}" for k, v in environ.items()), *command,
        ]  # fmt: skip
        return ["ip", "netns", "exec", netns, *argv] if netns else argv

    def run(
        self,
        command: Sequence[str],
        *,
        timeout: float = 600,
        input: str | None = None,
        check: bool = True,
        **how: object,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside (see ``argv`` for ``how``); stdout and stderr together.

        Raises:
            AssertionError: with the output, when ``check`` and it exits non-zero.
        """
        done = subprocess.run(
            self.argv(command, **how),  # type: ignore[arg-type]
            input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"debian {self.release}: {' '.join(command)} exited {done.returncode}:\n"
                f"{done.stdout[-6000:]}"
            )
        return done

    def popen(self, command: Sequence[str], *, log: Path, **how: object) -> subprocess.Popen[bytes]:
        """Start ``command`` inside in the background, its output to ``log``; stop it by pid."""
        with log.open("ab") as out:
            return subprocess.Popen(
                self.argv(command, **how),  # type: ignore[arg-type]
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip


@contextmanager
def unpacked(release: str, parent: Path | None = None) -> Iterator[Chroot]:
    """A fresh copy of the cached ``release`` (11, 12 or 13), removed afterwards.

    Skips (fails under CI) when ``make chroots`` has not built it (``require``).
    """
    path = require(release)
    root = Path(tempfile.mkdtemp(prefix=f"loginwatch-debian{release}-", dir=parent or "/var/tmp"))
    try:
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-xzf", str(path)],
            check=True, timeout=300, capture_output=True,
        )  # fmt: skip
        # The tarball holds `.`: the unpacked root keeps its own 0755 mode.
        os.chmod(root, 0o755)
        yield Chroot(root, release)
    finally:
        # Every mount lived in a namespace that died with its command: a plain rm is safe.
        # (--one-file-system: were one still there, rm stops at it instead of going through.)
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False, timeout=300)
