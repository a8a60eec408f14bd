"""The host's spool: capture records waiting for the broker's confirm.

One file per event, written durably (write, fsync, rename, fsync the
directory), deleted only after the broker confirmed the event. Bounded in
count and bytes. Logins and logouts come first: a full spool makes room for
one by dropping its oldest failed-login records (a brute force while the
broker is down must not cost the real login that follows), and a failure that
does not fit is dropped itself. Every record that does not fit — or cannot be
written, on a full disk — is counted in the ``dropped`` file, which is
preallocated so that counting needs no new disk block, and reported by the
next event that gets through.

The directory is used only when it is safe (``producer.safedir``: ours, not
writable by group or others) and every file in it is opened relative to it
without following symlinks. The foreground functions import only ``os``
(``fcntl`` on overflow).
"""

from __future__ import annotations

import os

from producer import capture, safedir

DROPPED = "dropped"
LOCK = ".publisher.lock"
# Records that give way when the spool is full: everything but logins and logouts.
LOW_SUFFIX = ".low" + capture.SUFFIX
_COUNTER_WIDTH = 20
_URGENT_TYPES = (b"open_session", b"close_session")


class SpoolFull(Exception):
    """The spool holds its maximum count or bytes of events."""


def urgent(data: bytes) -> bool:
    """Whether a record is a login or logout (a successful authentication, too).

    Both items are the hook's own — ``PAM_TYPE`` from pam_exec, the outcome from
    the PAM line's argv — so the remote side cannot promote its failures. A
    record that is not a capture counts as urgent: it is never dropped to make room.
    """
    try:
        items = capture.parse(data)
    except ValueError:
        return True
    outcome = items.get("LW_OUTCOME", b"")
    if outcome == b"failure":
        return False
    return outcome == b"success" or items.get("PAM_TYPE", b"") in _URGENT_TYPES


def write(spool_dir: str, name: str, data: bytes, max_events: int, max_bytes: int) -> int:
    """Durably add one record to the spool; returns how many failure records gave way.

    Raises:
        SpoolFull: the spool is at its bound and nothing may give way (the caller
            counts the drop).
        UnsafePath: the directory is not safe to write as us.
        OSError: the record could not be written (full disk, read-only …).
    """
    is_urgent = urgent(data)
    if not is_urgent:
        name = name.removesuffix(capture.SUFFIX) + LOW_SUFFIX
    dir_fd = safedir.open_dir(spool_dir)
    try:
        evicted = _make_room(dir_fd, len(data), is_urgent, max_events, max_bytes)
        if evicted:
            count_dropped(spool_dir, evicted)
        _write_durably(dir_fd, name, data)
    finally:
        os.close(dir_fd)
    return evicted


def _write_durably(dir_fd: int, name: str, data: bytes) -> None:
    tmp = "." + name + ".tmp"
    fd = safedir.open_file(dir_fd, tmp, safedir.CREATE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def _make_room(dir_fd: int, size: int, is_urgent: bool, max_events: int, max_bytes: int) -> int:
    """Check the bounds for a new record of ``size`` bytes; drop failures for a login.

    Returns how many failure records were removed. Bounded: one directory scan,
    and at most every failure record of it removed.

    Raises:
        SpoolFull: no room, and nothing may give way.
    """
    entries = [e for e in os.scandir(dir_fd) if e.name.endswith(capture.SUFFIX)]
    count = len(entries)
    # Stat every file only when the worst case could pass the byte bound.
    used = 0
    if (count + 1) * capture.RECORD_LIMIT > max_bytes:
        used = sum(e.stat(follow_symlinks=False).st_size for e in entries)
    if count < max_events and used + size <= max_bytes:
        return 0
    why = (
        f"{count} events spooled (max_events {max_events})"
        if count >= max_events
        else f"{used} bytes spooled (max_bytes {max_bytes})"
    )
    if not is_urgent:
        raise SpoolFull(why)
    failures = sorted((e.name, e) for e in entries if e.name.endswith(LOW_SUFFIX))
    evicted = 0
    for name, entry in failures:
        if count < max_events and used + size <= max_bytes:
            break
        try:
            freed = entry.stat(follow_symlinks=False).st_size if used else 0
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            freed = 0  # published meanwhile: the room is there, and nothing was lost
        else:
            evicted += 1
        count, used = count - 1, used - freed
    if count < max_events and used + size <= max_bytes:
        return evicted
    raise SpoolFull(f"{why}, all of them logins or logouts")


def count_dropped(spool_dir: str, n: int = 1) -> int:
    """Add ``n`` to the dropped counter (in place, under a lock); returns the total.

    Raises:
        UnsafePath: the directory is unsafe, or the counter is a symlink or no file.
        OSError: the counter could not be updated.
    """
    import fcntl  # noqa: PLC0415 - only on the overflow path

    dir_fd = safedir.open_dir(spool_dir)
    try:
        fd = safedir.open_file(dir_fd, DROPPED, safedir.UPDATE)
    finally:
        os.close(dir_fd)
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
    """The dropped counter, creating the preallocated file if it is missing.

    Raises:
        UnsafePath, OSError: as ``count_dropped``.
    """
    return count_dropped(spool_dir, 0)


def pending(spool_dir: str) -> list[str]:
    """Paths of the spooled records: logins and logouts first, each kind oldest first.

    Raises:
        UnsafePath: the directory is not safe to use.
    """
    try:
        dir_fd = safedir.open_dir(spool_dir, create=False)
    except FileNotFoundError:
        return []
    try:
        names = [n for n in os.listdir(dir_fd) if n.endswith(capture.SUFFIX)]
    finally:
        os.close(dir_fd)
    # Names start with the capture time, so a sort is oldest first.
    names.sort(key=lambda n: (n.endswith(LOW_SUFFIX), n))
    return [os.path.join(spool_dir, n) for n in names]


def read_record(path: str) -> bytes:
    """The bytes of one spooled record, read without following a symlink.

    Raises:
        FileNotFoundError: it was published (or gave way) meanwhile.
        UnsafePath: a symlink, not a regular file, or an unsafe directory.
        OSError: it cannot be read.
    """
    dir_fd = safedir.open_dir(os.path.dirname(path), create=False)
    try:
        fd = safedir.open_file(dir_fd, os.path.basename(path), safedir.READ)
    finally:
        os.close(dir_fd)
    try:
        # One byte past the bound: what our hook wrote is never longer.
        return os.read(fd, capture.RECORD_LIMIT + 1)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """Delete a record the broker confirmed (gone already is fine: it gave way).

    Raises:
        UnsafePath, OSError: the directory is unsafe or the record cannot be removed.
    """
    dir_fd = safedir.open_dir(os.path.dirname(path), create=False)
    try:
        os.unlink(os.path.basename(path), dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dir_fd)


def quarantine(path: str) -> str:
    """Move a record no publisher can use aside (never delete it); returns the new path.

    Raises:
        UnsafePath, OSError: a directory is unsafe, or the record cannot be moved.
    """
    spool_dir, name = os.path.split(path)
    bad_dir = os.path.join(spool_dir, "bad")
    dir_fd = safedir.open_dir(spool_dir, create=False)
    try:
        bad_fd = safedir.open_dir(bad_dir)
        try:
            # rename moves a symlink itself, never what it points to.
            os.rename(name, name, src_dir_fd=dir_fd, dst_dir_fd=bad_fd)
        finally:
            os.close(bad_fd)
    finally:
        os.close(dir_fd)
    return os.path.join(bad_dir, name)


class publisher_lock:  # used like a function: `with publisher_lock(d) as ours`
    """Try to become the spool's only publisher; ``as`` gives whether we are.

    ``wait``: seconds to wait for a running publisher to finish (flock has no timeout).

    A class, not ``@contextmanager``: the foreground must not import contextlib.

    Raises (on enter):
        UnsafePath, OSError: the spool directory or the lock file is unsafe or unusable.
    """

    def __init__(self, spool_dir: str, wait: float = 0) -> None:
        self.spool_dir = spool_dir
        self.wait = wait
        self.fd = -1

    def __enter__(self) -> bool:
        import fcntl  # noqa: PLC0415 - publisher side only
        import time  # noqa: PLC0415

        dir_fd = safedir.open_dir(self.spool_dir)
        try:
            self.fd = safedir.open_file(dir_fd, LOCK, safedir.UPDATE)
        finally:
            os.close(dir_fd)
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
