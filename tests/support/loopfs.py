"""A small ext4 file system in an image file, for tests that mount it in a private
mount namespace (``mount -o loop`` there: the machine never sees the mount, and the loop
device is let go when the namespace's last process ends)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import missing


@contextmanager
def ext4_image(inodes: int = 256, size_mib: int = 16) -> Iterator[Path]:
    """A directory (0755: ``nobody`` can traverse it) holding ``fs.img`` (ext4, the
    default 5 % of blocks reserved for root) and an empty mount point ``mnt``.

    Afterwards waits for the loop device to be let go, then removes both.
    """
    for tool in ("mkfs.ext4", "losetup"):
        if shutil.which(tool) is None:
            missing(f"{tool} (apt-get install e2fsprogs mount)")
    where = Path(tempfile.mkdtemp(prefix="loginwatch-fs-"))
    image = where / "fs.img"
    try:
        where.chmod(0o755)
        with open(image, "wb") as out:
            out.truncate(size_mib << 20)
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-N", str(inodes), "-m", "5", str(image)],
            check=True,
            capture_output=True,
        )
        (where / "mnt").mkdir(mode=0o755)
        yield where
    finally:
        released(image)
        shutil.rmtree(where, ignore_errors=True)


def released(image: Path, timeout: float = 30) -> bool:
    """Wait until no loop device holds ``image`` (a namespace that mounted it ends with
    its last process: a publisher that lingers, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["losetup", "-j", str(image)], capture_output=True, check=False)
        if not found.stdout.strip():
            return True
        time.sleep(0.2)
    return False
