"""The host's spool as the hook's foreground writes it: one durable record per event.

A record goes into a free preallocated slot (``producer.slots``): no new inode, no
new block, one ``fdatasync``. When every slot is taken (the broker has been away a
while), it gets a file of its own: a temp file, written, ``fsync``ed, renamed, and
the directory ``fsync``ed. Either way it is deleted only once the broker confirmed
it (``producer.backlog``, the publisher's side).

Bounded in count and bytes, slots and files together. Logins and logouts come
first: a full spool makes room for one by dropping its oldest failure records (a
brute force while the broker is down must not cost the real login that follows),
and a failure that does not fit is dropped itself. When no file can be made (no
inode or block left: another user may have taken them all) and no slot is free, a
login takes the slot of the oldest failure. Whatever gives way is counted, with
what it was, in the ledger (``producer.ledger``), and reported by the next event.

The directory is used only when it is safe (``producer.safedir``: ours, not
writable by group or others) and every file in it is opened relative to it
without following symlinks. A record that gives way is removed and listed in
``UNCOUNTED`` in one step, with the deadline held off (``producer.critical``): a
deadline between the two lost it without a trace. The foreground's path imports only
``os``, ``fcntl`` and ``_signal`` (``producer.ledger`` when something is dropped).
"""

from __future__ import annotations

import fcntl
import os

from producer import capture, critical, safedir, slots

LOCK = ".publisher.lock"
# What the hook hands its publisher instead of the lock's descriptor: another publisher
# holds the lock (deliver the handoff only), or the child is to take it itself.
LOCK_BUSY = -1
LOCK_TAKE = -2
# Record files that give way when the spool is full: everything but logins and logouts.
LOW_SUFFIX = ".low" + capture.SUFFIX
TMP_SUFFIX = safedir.TMP_SUFFIX  # a record file being written: "." + name + TMP_SUFFIX


# Records this process removed from the spool or could not write, not counted in the
# ledger yet: what the hook hands to a child to count when its deadline came first (the
# ledger's lock kept it waiting, say: the foreground must not wait for it).
UNCOUNTED: list[bytes] = []


class SpoolFull(Exception):
    """The spool holds its maximum count or bytes of events."""


class Handoff(tuple[str, bytes, str, bool]):
    """A record the hook hands to the publisher it forks, in memory: (name, data,
    spool_dir, spooled). ``spooled`` False: the spool refused it; True: perhaps in the
    spool (the hook's deadline fired while it wrote). ``spool_dir`` is "" when the hook's
    deadline fired before it knew its spool: the publisher takes the config's."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self[0]

    @property
    def data(self) -> bytes:
        return self[1]

    @property
    def spool_dir(self) -> str:
        return self[2]

    @property
    def spooled(self) -> bool:
        return self[3]


def urgent(data: bytes) -> bool:
    """Whether a record is a login or logout (a successful authentication, too).

    A record that is not a capture counts as urgent: it is never dropped to make room.
    """
    found = capture.header(data)
    if found is not None:
        return found.urgent
    try:
        items = capture.parse(data)
    except ValueError:
        return True
    return capture.is_urgent(items.get("PAM_TYPE", b""), items.get("LW_OUTCOME", b""))


def file_name(name: str, data: bytes) -> str:
    """The file a record gets when no slot is free (failures end in ``LOW_SUFFIX``)."""
    return name if urgent(data) else name.removesuffix(capture.SUFFIX) + LOW_SUFFIX


def write(spool_dir: str, name: str, data: bytes, max_events: int, max_bytes: int) -> int:
    """Durably add one record to the spool; returns how many failure records gave way.

    Raises:
        SpoolFull: the spool is at its bound and nothing may give way (the caller
            counts the drop).
        UnsafePath: the directory is not safe to write as us.
        OSError: the record could not be written (no slot free, and no file could
            be made: a full disk, no inode left, a read-only file system …).
    """
    is_urgent = urgent(data)
    dir_fd = safedir.open_dir(spool_dir)
    try:
        held = _Held(dir_fd)
    except BaseException:
        os.close(dir_fd)
        raise
    try:
        try:
            held.make_room(len(data), is_urgent, max_events, max_bytes)
        except Exception:  # SpoolFull or worse: what gave way before it is counted all the same
            held.count(spool_dir)
            raise
        # Not after the hook's deadline (no Exception): it must not wait for the ledger's
        # lock, and its rescue counts what is still in UNCOUNTED.
        held.count(spool_dir)
        try:
            _store(dir_fd, held.slot_fd, file_name(name, data), data)
        except OSError:
            if not is_urgent or not held.take_failure_slot(data):
                raise
            held.count(spool_dir)
        return held.removed
    finally:
        held.close()


def count_uncounted(spool_dir: str) -> int:
    """Count ``UNCOUNTED`` in the ledger (emptied once they are); returns the total.

    Raises:
        UnsafePath, OSError: the ledger cannot be updated (they stay uncounted).
    """
    if not UNCOUNTED:
        return 0
    from producer import ledger  # noqa: PLC0415 - only when something gave way

    # Forgotten as they are counted: a deadline between the two counted them twice.
    drops = [ledger.describe(data) for data in UNCOUNTED]
    return ledger.add(spool_dir, drops, then=UNCOUNTED.clear)


def _store(dir_fd: int, slot_fd: int, name: str, data: bytes) -> None:
    if slot_fd >= 0:
        # Hooks that run at once start at different slots, and rarely wait for a lock.
        index = slots.claim(slot_fd, os.getpid())
        if index >= 0:
            try:
                slots.put(slot_fd, index, data)
            finally:
                slots.unlock(slot_fd, index)
            return
    safedir.write_new(dir_fd, name, (data,))


class _Held:
    """What the spool holds, for its bounds: record files and used slots."""

    def __init__(self, dir_fd: int) -> None:
        self.dir_fd = dir_fd
        self.slot_fd = -1
        self.slot_fd = slots.open_slots(dir_fd)
        self.files = [e.name for e in os.scandir(dir_fd) if e.name.endswith(capture.SUFFIX)]
        self.removed = 0

    def close(self) -> None:
        if self.slot_fd >= 0:
            os.close(self.slot_fd)
        os.close(self.dir_fd)

    def count(self, spool_dir: str) -> None:
        """Count what gave way since the last call (the drop is never silent)."""
        count_uncounted(spool_dir)

    def make_room(self, size: int, is_urgent: bool, max_events: int, max_bytes: int) -> None:
        """Check the bounds for a new record of ``size`` bytes; drop failures for a login.

        Bounded: one directory scan and one header per slot, and at most every
        failure record removed.

        Raises:
            SpoolFull: no room, and nothing may give way.
        """
        worst = len(self.files) + slots.count(self.slot_fd)
        # Read sizes and slot headers only when the worst case could pass a bound.
        if worst < max_events and (worst + 1) * capture.RECORD_LIMIT <= max_bytes:
            return
        records = self._records()
        count, used = len(records), sum(r[2] for r in records)
        if count < max_events and used + size <= max_bytes:
            return
        why = (
            f"{count} events spooled (max_events {max_events})"
            if count >= max_events
            else f"{used} bytes spooled (max_bytes {max_bytes})"
        )
        if not is_urgent:
            raise SpoolFull(why)
        for record in sorted(records):
            if count < max_events and used + size <= max_bytes:
                return
            if not record.urgent and self._remove(record):
                count, used = count - 1, used - record.size
        if count < max_events and used + size <= max_bytes:
            return
        raise SpoolFull(f"{why}, all of them logins or logouts")

    def _records(self) -> list[_Record]:
        """Every record held, in files and slots."""
        records = []
        for name in self.files:
            stamp = name.split("-", 1)[0]
            try:
                size = os.stat(name, dir_fd=self.dir_fd, follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # published meanwhile
            when = int(stamp) if stamp.isdigit() else 0
            records.append(_Record((when, not name.endswith(LOW_SUFFIX), size, name, -1)))
        for index in range(slots.count(self.slot_fd)):
            found = slots.header(self.slot_fd, index)
            if found is not None:
                records.append(_Record((found.time_ns, found.urgent, found.size, "", index)))
        return records

    def _remove(self, record: _Record) -> bool:
        """Remove one failure record to make room; whether its room is free now."""
        if record.slot < 0:
            try:
                data = read_file(self.dir_fd, record.name)
                with critical.section():
                    os.unlink(record.name, dir_fd=self.dir_fd)
                    self._gave_way(data)
            except FileNotFoundError:
                return True  # published meanwhile: the room is there, and nothing was lost
            return True
        if not slots.lock(self.slot_fd, record.slot):
            return False  # the publisher is sending it right now
        try:
            held = slots.get(self.slot_fd, record.slot)
            if held is not None:
                with critical.section():
                    slots.clear(self.slot_fd, record.slot)
                    self._gave_way(held)
                os.fdatasync(self.slot_fd)
        finally:
            slots.unlock(self.slot_fd, record.slot)
        return True

    def _gave_way(self, data: bytes) -> None:
        UNCOUNTED.append(data)
        self.removed += 1

    def take_failure_slot(self, data: bytes) -> bool:
        """Write ``data`` over the oldest failure in a slot (no file could be made and
        no slot is free); returns whether one was taken."""
        for record in sorted(r for r in self._records() if not r.urgent and r.slot >= 0):
            if not slots.lock(self.slot_fd, record.slot):
                continue
            try:
                old = slots.get(self.slot_fd, record.slot)
                if old is not None and not urgent(old):  # not published and taken again
                    with critical.section():
                        slots.put(self.slot_fd, record.slot, data)
                        self._gave_way(old)
                    return True
            finally:
                slots.unlock(self.slot_fd, record.slot)
        return False


class _Record(tuple[int, bool, int, str, int]):
    """(time_ns, urgent, bytes, file name or "", slot index or -1); sorts oldest first."""

    __slots__ = ()

    @property
    def urgent(self) -> bool:
        return self[1]

    @property
    def size(self) -> int:
        return self[2]

    @property
    def name(self) -> str:
        return self[3]

    @property
    def slot(self) -> int:
        return self[4]


def read_file(dir_fd: int, name: str) -> bytes:
    """A record file's bytes, read without following a symlink.

    Raises:
        FileNotFoundError: it is gone (published, or gave way).
        UnsafePath: a symlink or no regular file.
        OSError: it cannot be read.
    """
    fd = safedir.open_file(dir_fd, name, safedir.READ)
    try:
        # One byte past the bound: what our hook wrote is never longer.
        return os.read(fd, capture.RECORD_LIMIT + 1)
    finally:
        os.close(fd)


def try_lock(spool_dir: str) -> int:
    """The publisher lock, taken, when no publisher holds it (a descriptor to hand a
    forked publisher, which keeps the lock); -1 when one does.

    Raises:
        UnsafePath, OSError: the spool directory or the lock file is unsafe or unusable.
    """
    dir_fd = safedir.open_dir(spool_dir)
    try:
        fd = safedir.open_file(dir_fd, LOCK, safedir.UPDATE)
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return -1
    return fd
