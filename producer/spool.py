"""The host's spool: capture records waiting for the broker's confirm.

One file per event, written durably (write, fsync, rename, fsync the
directory), deleted only after the broker confirmed the event. Bounded in
count and bytes; an event that does not fit — or cannot be written, on a full
disk — is counted in the ``dropped`` file, which is preallocated so that
counting needs no new disk block, and reported by the next event that gets
through. The foreground functions import only ``os`` (``fcntl`` on overflow).
"""

from __future__ import annotations

import os

from producer import capture

DROPPED = "dropped"
LOCK = ".publisher.lock"
_COUNTER_WIDTH = 20


class SpoolFull(Exception):
    """The spool holds its maximum count or bytes of events."""


def write(spool_dir: str, name: str, data: bytes, max_events: int, max_bytes: int) -> str:
    """Durably add one record to the spool; returns its path.

    Raises:
        SpoolFull: the spool is at its bound (the caller counts the drop).
        OSError: the record could not be written (full disk, read-only …).
    """
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    _check_bounds(spool_dir, max_events, max_bytes)
    path = os.path.join(spool_dir, name)
    tmp = os.path.join(spool_dir, "." + name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    _fsync_dir(spool_dir)
    return path


def _check_bounds(spool_dir: str, max_events: int, max_bytes: int) -> None:
    names = [e for e in os.scandir(spool_dir) if e.name.endswith(capture.SUFFIX)]
    if len(names) >= max_events:
        raise SpoolFull(f"{len(names)} events spooled (max_events {max_events})")
    # Stat every file only when the worst case could pass the byte bound.
    if (len(names) + 1) * capture.RECORD_LIMIT > max_bytes:
        used = sum(e.stat().st_size for e in names)
        if used + capture.RECORD_LIMIT > max_bytes:
            raise SpoolFull(f"{used} bytes spooled (max_bytes {max_bytes})")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def count_dropped(spool_dir: str, n: int = 1) -> int:
    """Add ``n`` to the dropped counter (in place, under a lock); returns the total.

    Raises:
        OSError: the counter could not be updated.
    """
    import fcntl  # noqa: PLC0415 - only on the overflow path

    path = os.path.join(spool_dir, DROPPED)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        total = _read_counter(fd) + n
        os.pwrite(fd, b"%0*d\n" % (_COUNTER_WIDTH, max(total, 0)), 0)
        os.fsync(fd)
        return total
    finally:
        os.close(fd)


def _read_counter(fd: int) -> int:
    raw = os.pread(fd, _COUNTER_WIDTH + 1, 0).strip()
    return int(raw) if raw.isdigit() else 0


def read_dropped(spool_dir: str) -> int:
    """The dropped counter, creating the preallocated file if it is missing."""
    path = os.path.join(spool_dir, DROPPED)
    if not os.path.exists(path):
        count_dropped(spool_dir, 0)
    with open(path, "rb") as handle:
        return _read_counter(handle.fileno())


def pending(spool_dir: str) -> list[str]:
    """Paths of the spooled records, oldest first (names start with the time)."""
    try:
        names = sorted(n for n in os.listdir(spool_dir) if n.endswith(capture.SUFFIX))
    except FileNotFoundError:
        return []
    return [os.path.join(spool_dir, n) for n in names]


def quarantine(path: str) -> str:
    """Move a record no publisher can use aside (never delete it); returns the new path."""
    bad_dir = os.path.join(os.path.dirname(path), "bad")
    os.makedirs(bad_dir, mode=0o700, exist_ok=True)
    target = os.path.join(bad_dir, os.path.basename(path))
    os.rename(path, target)
    return target


class publisher_lock:  # used like a function: `with publisher_lock(d) as ours`
    """Try to become the spool's only publisher; ``as`` gives whether we are.

    ``wait``: seconds to wait for a running publisher to finish (flock has no timeout).

    A class, not ``@contextmanager``: the foreground must not import contextlib.
    """

    def __init__(self, spool_dir: str, wait: float = 0) -> None:
        self.spool_dir = spool_dir
        self.wait = wait
        self.fd = -1

    def __enter__(self) -> bool:
        import fcntl  # noqa: PLC0415 - publisher side only
        import time  # noqa: PLC0415

        os.makedirs(self.spool_dir, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(self.spool_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
