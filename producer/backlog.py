"""What waits in the spool, as the publisher and ``loginwatch-hook spool`` see it.

A ``Backlog`` opens the spool once for a publishing round and lists its records in
publishing order (``pending``: logins and logouts first, each oldest first), in
slots and in files alike: both formats of record, so the records spooled before
an upgrade (one file each, no header) go out like the new ones. ``take`` reads a
record and keeps its slot locked until ``done`` (the broker confirmed it: deleted)
or ``release``; ``set_aside`` moves a record no publisher can use to ``bad/``,
never deleting it.

It also cleans up after a deadline or a crash: a temp file a hook never renamed
(its deadline fired mid-write, or an older hook's did) is adopted when it holds
a complete record, and otherwise counted as dropped, with what could be read of
it, and removed (``adopt_orphans``): no temp file stays forever. ``prepare``
makes the slots file and the full-size ledger, off the login path.

Also the publisher lock (``spool_lock``): one publisher per spool at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import time
from typing import NamedTuple

from producer import capture, ledger, safedir, slots, spool

# A hook writes its temp file within its own bound (2 s): one older than this is no
# write in progress, but what a deadline or a crash left.
ORPHAN_AGE_S = 10.0
BAD_DIR = "bad"


class Entry(NamedTuple):
    """A spooled record; entries sort in publishing order (logins and logouts first,
    each oldest first)."""

    low: bool  # neither a login nor a logout
    time_ns: int
    name: str  # its file, or "" in a slot
    slot: int  # its slot, or -1 in a file

    @property
    def urgent(self) -> bool:
        return not self.low

    @property
    def label(self) -> str:
        return self.name or f"slot {self.slot}"


class Backlog:
    """The spool ``spool_dir``, open for one publishing round (a context manager).

    Raises (on construction):
        FileNotFoundError: there is no spool (unless ``create``).
        UnsafePath, OSError: it is unsafe or unusable.
    """

    def __init__(self, spool_dir: str, create: bool = False) -> None:
        self.spool_dir = spool_dir
        self.dir_fd = safedir.open_dir(spool_dir, create=create)
        try:
            self.slot_fd = slots.open_slots(self.dir_fd)
        except BaseException:
            os.close(self.dir_fd)
            raise
        self._cleared = False

    def __enter__(self) -> Backlog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sync()
        if self.slot_fd >= 0:
            os.close(self.slot_fd)
        os.close(self.dir_fd)

    def pending(self) -> list[Entry]:
        """Every record waiting, in publishing order."""
        entries = []
        for name in os.listdir(self.dir_fd):
            if name.endswith(capture.SUFFIX):
                stamp = name.split("-", 1)[0]
                when = int(stamp) if stamp.isdigit() else 0
                entries.append(Entry(name.endswith(spool.LOW_SUFFIX), when, name, -1))
        for index in range(slots.count(self.slot_fd)):
            found = slots.header(self.slot_fd, index)
            if found is not None:
                entries.append(Entry(not found.urgent, found.time_ns, "", index))
        # Names start with the capture time, so within a kind the order is oldest first.
        return sorted(entries)

    def take(self, entry: Entry) -> bytes | None:
        """The bytes of ``entry`` (its slot stays locked), or None: gone meanwhile, or
        a hook is writing that slot.

        Raises:
            UnsafePath: a file that is a symlink or no regular file.
            OSError: it cannot be read.
        """
        if entry.slot < 0:
            try:
                return spool.read_file(self.dir_fd, entry.name)
            except FileNotFoundError:
                return None  # published (or gave way) meanwhile
        if not slots.lock(self.slot_fd, entry.slot):
            return None
        data = slots.get(self.slot_fd, entry.slot)
        found = None if data is None else capture.header(data)
        if found is None or found.time_ns != entry.time_ns:
            slots.unlock(self.slot_fd, entry.slot)
            return None
        return data

    def release(self, entry: Entry) -> None:
        """Let go of a taken record that stays spooled."""
        if entry.slot >= 0:
            slots.unlock(self.slot_fd, entry.slot)

    def done(self, entry: Entry) -> None:
        """Delete a taken record the broker confirmed (gone already is fine: it gave way).

        Raises:
            OSError: it cannot be removed.
        """
        if entry.slot < 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=self.dir_fd)
            return
        try:
            slots.clear(self.slot_fd, entry.slot)
            self._cleared = True
        finally:
            slots.unlock(self.slot_fd, entry.slot)

    def sync(self) -> None:
        """Make the slots freed so far durable (one sync for a round)."""
        if self._cleared:
            os.fdatasync(self.slot_fd)
            self._cleared = False

    def set_aside(self, entry: Entry, data: bytes) -> str:
        """Move a taken record no publisher can use to ``bad/``; returns its new path.

        Raises:
            UnsafePath, OSError: ``bad/`` is unsafe, or the record cannot be moved.
        """
        bad_fd = safedir.open_dir(os.path.join(self.spool_dir, BAD_DIR))
        try:
            if entry.slot < 0:
                # rename moves a symlink itself, never what it points to.
                os.rename(entry.name, entry.name, src_dir_fd=self.dir_fd, dst_dir_fd=bad_fd)
                return os.path.join(self.spool_dir, BAD_DIR, entry.name)
            name = f"{entry.time_ns:020d}-slot{entry.slot}{capture.SUFFIX}"
            safedir.write_new(bad_fd, name, (data,))
        finally:
            os.close(bad_fd)
        self.done(entry)
        return os.path.join(self.spool_dir, BAD_DIR, name)

    def find(self, name: str, data: bytes) -> bool:
        """Whether the record ``data`` (file name ``name``) is in the spool; a temp file
        of it that holds all of it is adopted, one that does not is removed.

        For a hook whose deadline fired while it wrote ``data``: the publisher that
        holds it in memory publishes it from there when it is not found.
        """
        file_name = spool.file_name(name, data)
        tmp = "." + file_name + spool.TMP_SUFFIX
        if _exists(self.dir_fd, file_name):
            return True
        try:
            left = spool.read_file(self.dir_fd, tmp)
        except FileNotFoundError:
            left = None
        if left is not None:
            if left == data:
                os.rename(tmp, file_name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
                return True
            os.unlink(tmp, dir_fd=self.dir_fd)
        wanted = capture.header(data)
        for index in range(slots.count(self.slot_fd)):
            if slots.header(self.slot_fd, index) == wanted and _slot_holds(
                self.slot_fd, index, data
            ):
                return True
        return False

    def adopt_orphans(self, now: float) -> tuple[int, int]:
        """Temp files older than ``ORPHAN_AGE_S``: a complete record becomes a spooled
        record, anything else is counted as dropped and removed. Returns (adopted,
        dropped).

        Raises:
            UnsafePath, OSError: the ledger cannot count a drop.
        """
        adopted, dropped = 0, 0
        for name in os.listdir(self.dir_fd):
            if not (name.startswith(".") and name.endswith(capture.SUFFIX + spool.TMP_SUFFIX)):
                continue
            try:
                st = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False)
                if now - st.st_mtime < ORPHAN_AGE_S:
                    continue  # a hook may still be writing it
                data = spool.read_file(self.dir_fd, name)
            except FileNotFoundError:
                continue
            if _complete(data):
                final = name[1 : -len(spool.TMP_SUFFIX)]
                os.rename(name, final, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
                adopted += 1
            else:
                # Removed as it is counted: a deadline between the two counted it again.
                unlink = functools.partial(os.unlink, name, dir_fd=self.dir_fd)
                ledger.add(self.spool_dir, [ledger.describe(data)], then=unlink)
                dropped += 1
        return adopted, dropped

    def prepare(self) -> None:
        """The slots file and the full-size ledger, made when missing (off the login path).

        Raises:
            UnsafePath, OSError: no room for them, or an unsafe file in their place.
        """
        ledger.read(self.spool_dir)
        if slots.prepare(self.dir_fd):
            if self.slot_fd >= 0:
                os.close(self.slot_fd)
            self.slot_fd = slots.open_slots(self.dir_fd)


def _complete(data: bytes) -> bool:
    """Whether a temp file holds a whole record: a framed one whose length and CRC
    match, or one of the first format (no header) with its id and time."""
    try:
        items = capture.parse(data)
    except ValueError:
        return False
    return data.startswith(capture.MAGIC2) or ("LW_ID" in items and "LW_TIME" in items)


def _slot_holds(fd: int, index: int, data: bytes) -> bool:
    if not slots.lock(fd, index):
        return True  # a publisher is sending it right now
    try:
        return slots.get(fd, index) == data
    finally:
        slots.unlock(fd, index)


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


class spool_lock:  # used like a function: `with spool_lock(d) as ours`
    """Become the spool's only publisher; ``as`` gives whether we are.

    ``wait``: seconds to wait for a running publisher to finish (flock has no
    timeout). ``held``: a descriptor of the lock already taken (the hook takes it
    before it forks the publisher, which inherits it).

    Raises (on enter):
        UnsafePath, OSError: the spool directory or the lock file is unsafe or unusable.
    """

    def __init__(self, spool_dir: str, wait: float = 0, held: int = -1) -> None:
        self.spool_dir = spool_dir
        self.wait = wait
        self.fd = held

    def __enter__(self) -> bool:
        if self.fd >= 0:
            return True
        dir_fd = safedir.open_dir(self.spool_dir)
        try:
            self.fd = safedir.open_file(dir_fd, spool.LOCK, safedir.UPDATE)
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
