"""Benchmark: what one durable spool write costs, by method. Figures only, no assertions.

- ``new_file``: the spool's old write, one file per event: create a temp file, write,
  ``fsync``, rename, ``fsync`` the directory (a new inode and two journal commits);
- ``slot_fsync`` / ``slot_fdatasync``: the record written in place into a preallocated,
  zero-filled file (no new inode, no new block), then ``fsync`` or ``fdatasync``;
- ``fallocated_fdatasync``: the same into a ``posix_fallocate``d file, whose blocks are
  reserved but unwritten: the first write converts the extent, a metadata change that
  ``fdatasync`` must commit like ``fsync`` (why the spool zero-fills its slots instead).

The methods take turns, round by round, in one directory on the disk the spool lives on
(``--dir``, default /var/tmp: not a tmpfs, where every sync is free), 10 ms apart: logins do
not come within one tick of the file system's coarse clock, so each write changes the file's
mtime, which ``fsync`` must commit and ``fdatasync`` may skip. (Back to back, within a tick,
the two cost the same.)

Run alone: ``.venv/bin/python -m tests.bench.bench_fsync [--dir DIR] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from tests.bench.bench_support import median_ms, percentile_ms

RECORD = b"x" * 400  # a key login's spool record is ~400 bytes
SLOT = 20 * 1024
SLOTS = 64


def _new_file(dir_fd: int, n: int) -> None:
    name = f"{n:08d}.cap"
    fd = os.open("." + name + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
    os.write(fd, RECORD)
    os.fsync(fd)
    os.close(fd)
    os.rename("." + name + ".tmp", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def _slot_writer(fd: int, sync: Callable[[int], None]) -> Callable[[int, int], None]:
    def write(_dir_fd: int, n: int) -> None:
        os.pwrite(fd, RECORD, (n % SLOTS) * SLOT)
        sync(fd)

    return write


def _zero_filled(dir_fd: int, name: str) -> int:
    fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600, dir_fd=dir_fd)
    os.write(fd, bytes(SLOT * SLOTS))
    os.fsync(fd)
    return fd


def _fallocated(dir_fd: int, name: str) -> int:
    fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600, dir_fd=dir_fd)
    os.posix_fallocate(fd, 0, SLOT * SLOTS * 64)
    os.fsync(fd)
    return fd


def measure(directory: str = "/var/tmp", rounds: int = 200) -> dict[str, float]:
    """Median, p90 and p99 milliseconds per durable write, by method, interleaved."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="lw-fsync-") as work:
        dir_fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        zero = _zero_filled(dir_fd, "slots")
        unwritten = _fallocated(dir_fd, "fallocated")
        fresh = 0
        methods: dict[str, Callable[[int, int], None]] = {
            "new_file": _new_file,
            "slot_fsync": _slot_writer(zero, os.fsync),
            "slot_fdatasync": _slot_writer(zero, os.fdatasync),
        }
        times: dict[str, list[float]] = {name: [] for name in [*methods, "fallocated_fdatasync"]}
        try:
            for n in range(rounds):
                for name, write in methods.items():
                    time.sleep(0.01)
                    start = time.perf_counter()
                    write(dir_fd, n)
                    times[name].append(time.perf_counter() - start)
                # Every round a block never written before: what a fallocated slot costs.
                time.sleep(0.01)
                start = time.perf_counter()
                os.pwrite(unwritten, RECORD, fresh * 4096)
                os.fdatasync(unwritten)
                times["fallocated_fdatasync"].append(time.perf_counter() - start)
                fresh += 1
        finally:
            for fd in (zero, unwritten, dir_fd):
                os.close(fd)
    figures: dict[str, float] = {}
    for name, values in times.items():
        figures[f"{name}_ms"] = median_ms(values)
        figures[f"{name}_p90_ms"] = percentile_ms(values, 90)
        figures[f"{name}_p99_ms"] = percentile_ms(values, 99)
    figures["fsync_vs_fdatasync"] = statistics.median(times["slot_fsync"]) / statistics.median(
        times["slot_fdatasync"]
    )
    figures["new_file_vs_slot_fdatasync"] = statistics.median(
        times["new_file"]
    ) / statistics.median(times["slot_fdatasync"])
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/var/tmp", help="a directory on the spool's disk")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    for key, value in measure(args.dir, args.rounds).items():
        print(f"{key:32} {value:10.3f}")
