"""The dropped ledger: how many records the spool had to give up, and which.

A record is dropped when it cannot be kept: a full spool, a login that made room
by removing failures, a disk with no block or inode left while no broker takes
the record from memory either, a damaged record. Each is counted here, and the
next event that gets through reports the count and the details (``dropped``,
``dropped_logins``, ``dropped_list`` of ``schemas.event.LoginEvent``); the
publisher then subtracts what it reported (``settle``).

The file is preallocated (``SIZE`` bytes) and rewritten in place under an
``flock``, so counting a drop never needs a new inode or block. Its first line
is the count as the first format wrote it (``%020d\\n``), which older hooks still
read; then ``LWDROP3 LOGINS LISTED`` and up to ``LISTED`` entries of seven
NUL-terminated fields each: capture time in ns, ``U`` or ``L`` (login or logout,
or not), PAM_TYPE, outcome, user and remote address (raw bytes, cut to
``FIELD_LIMIT``), and PAM_SERVICE (so a dropped sudo is listed as a sudo, not a
login). ``LWDROP2`` (six fields, no service) is still read; a hook older than
``LWDROP3`` reads the count of one and no list. Logins and logouts are listed before
failures, so a spray of failed passwords never pushes a dropped login off the list; within each, the
first drop stays listed and the latest ones take the other places.

Whoever counts drops it holds in memory forgets them in the same step (``add``'s
``then``), a deadline held off from the write on (``producer.critical``): a
deadline that fired between the two hands them to a child that counted them again.
This module imports only ``os``, ``fcntl`` and ``_signal``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable

from producer import capture, critical, safedir

FILE = "dropped"
SIZE = 4096
LISTED = 4
FIELD_LIMIT = 256  # bytes of a user name or address: more than an event shows
_WIDTH = 20
_MAGIC = b"LWDROP3"
_FIELDS = 7
_MAGIC2, _FIELDS2 = b"LWDROP2", 6  # the format before the service: read, never written


class Drop(tuple[int, bool, bytes, bytes, bytes, bytes, bytes]):
    """One dropped record: (time_ns, urgent, PAM_TYPE, outcome, user, remote, service)."""

    __slots__ = ()

    @property
    def time_ns(self) -> int:
        return self[0]

    @property
    def urgent(self) -> bool:
        return self[1]

    @property
    def pam_type(self) -> bytes:
        return self[2]

    @property
    def outcome(self) -> bytes:
        return self[3]

    @property
    def user(self) -> bytes:
        return self[4]

    @property
    def remote(self) -> bytes:
        return self[5]

    @property
    def service(self) -> bytes:
        return self[6]


def describe(data: bytes) -> Drop:
    """What a record was, as far as it can be read: a damaged or cut one too."""
    found = capture.header(data)
    if found is not None:
        body = data[capture.HEADER_SIZE : found.size]
    elif data.startswith(capture.MAGIC):
        body = data[len(capture.MAGIC) :]
    else:
        body = b""
    items = capture.items_of(body)
    pam_type, outcome = items.get("PAM_TYPE", b""), items.get("LW_OUTCOME", b"")
    urgent = found.urgent if found is not None else capture.is_urgent(pam_type, outcome)
    raw_time = items.get("LW_TIME", b"")
    time_ns = found.time_ns if found is not None else int(raw_time) if raw_time.isdigit() else 0
    connection = items.get("SSH_CONNECTION", b"").split()
    remote = connection[0] if connection else items.get("PAM_RHOST", b"")
    user = items.get("PAM_USER", b"")
    service = items.get("PAM_SERVICE", b"")
    return Drop((time_ns, urgent, pam_type[:32], outcome[:16], user[:FIELD_LIMIT],
                 remote[:FIELD_LIMIT], service[:32]))  # fmt: skip


class Ledger(tuple[int, int, tuple[Drop, ...]]):
    """(count, logins, listed): every drop, how many were logins or logouts, and up to
    ``LISTED`` of them."""

    __slots__ = ()

    @property
    def total(self) -> int:
        return self[0]

    @property
    def logins(self) -> int:
        return self[1]

    @property
    def listed(self) -> tuple[Drop, ...]:
        return self[2]


EMPTY = Ledger((0, 0, ()))


def add(
    spool_dir: str, drops: list[Drop], uncounted: int = 0, then: Callable[[], object] | None = None
) -> int:
    """Count ``drops`` (listing what there is room for) and ``uncounted`` drops of which
    nothing is known; returns the total. ``then`` (what forgets them) runs once they
    are counted, with no deadline in between: never counted twice, never not at all.

    Raises:
        UnsafePath: the directory is unsafe, or the ledger is a symlink or no file.
        OSError: the ledger could not be updated.
    """
    return _update(spool_dir, tuple(drops), uncounted, then=then).total


def settle(spool_dir: str, reported: Ledger) -> None:
    """Take what an event reported (and the broker confirmed) off the ledger.

    Raises:
        UnsafePath, OSError: as ``add``.
    """
    _update(spool_dir, reported=reported)


def read(spool_dir: str) -> Ledger:
    """The ledger as it is (made, empty and full-size, when missing).

    Raises:
        UnsafePath, OSError: as ``add``.
    """
    return _update(spool_dir)


def _changed(ledger: Ledger, drops: tuple[Drop, ...], uncounted: int, reported: Ledger) -> Ledger:
    listed = tuple(d for d in ledger.listed if d not in reported.listed)
    for drop in drops:
        listed = _listed(listed, drop)
    count = max(ledger.total - reported.total, 0) + len(drops) + uncounted
    logins = max(ledger.logins - reported.logins, 0) + sum(1 for d in drops if d.urgent)
    return Ledger((count, logins, listed))


def _listed(listed: tuple[Drop, ...], new: Drop) -> tuple[Drop, ...]:
    """``listed`` with ``new`` in it, when it ranks: logins first, then the first and
    the latest of each."""
    if len(listed) < LISTED:
        return tuple(sorted((*listed, new)))
    lower = [d for d in listed if not d.urgent] if new.urgent else []
    peers = lower or [d for d in listed if d.urgent == new.urgent]
    if len(peers) < 2 and not lower:
        return listed  # a failure, and every place taken by logins (or the first failure)
    # The first of its kind stays: the second oldest gives way to the newest.
    victim = peers[1] if len(peers) > 1 else peers[0]
    return tuple(sorted([*(d for d in listed if d is not victim), new]))


def _update(
    spool_dir: str,
    drops: tuple[Drop, ...] = (),
    uncounted: int = 0,
    reported: Ledger = EMPTY,
    then: Callable[[], object] | None = None,
) -> Ledger:
    dir_fd = safedir.open_dir(spool_dir)
    try:
        fd = safedir.open_file(dir_fd, FILE, safedir.UPDATE)
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a deadline may cut this wait short
        with critical.section():
            raw = os.pread(fd, SIZE, 0)
            before = _parse(raw)
            after = _changed(before, drops, uncounted, reported)
            if after != before or len(raw) < SIZE:
                _write(fd, after)
            if then is not None:
                then()
        return after
    finally:
        os.close(fd)


def _write(fd: int, ledger: Ledger) -> None:
    count = min(ledger.total, 10**_WIDTH - 1)
    head = b"%0*d\n%s %d %d\n" % (_WIDTH, count, _MAGIC, ledger.logins, len(ledger.listed))
    fields = [
        b"%d\0%s\0%s\0%s\0%s\0%s\0%s\0"
        % (
            d.time_ns,
            b"U" if d.urgent else b"L",
            d.pam_type,
            d.outcome,
            d.user,
            d.remote,
            d.service,
        )
        for d in ledger.listed
    ]
    data = b"".join([head, *fields])
    try:
        # The whole block, zero-padded: in place once it was written the first time.
        os.pwrite(fd, data.ljust(SIZE, b"\0"), 0)
    except OSError:
        # No block for the ledger's full size (an old 21-byte counter on a full disk):
        # the count alone still fits where it always was.
        os.pwrite(fd, head[: _WIDTH + 1], 0)
    os.fdatasync(fd)


def _parse(raw: bytes) -> Ledger:
    """The ledger in ``raw``; the first format (the count alone) reads as such."""
    first = raw[:_WIDTH].strip()
    count = int(first) if first.isdigit() else 0
    rest = raw[_WIDTH + 1 :]
    line, _, entries = rest.partition(b"\n")
    words = line.split(b" ")
    if len(words) != 3 or words[0] not in (_MAGIC, _MAGIC2) or not words[1].isdigit():
        return Ledger((count, 0, ()))
    if not words[2].isdigit():
        return Ledger((count, 0, ()))
    width = _FIELDS if words[0] == _MAGIC else _FIELDS2
    fields = entries.split(b"\0")
    listed = min(int(words[2]), LISTED, len(fields) // width)
    drops = []
    for n in range(listed):
        entry = fields[n * width : (n + 1) * width]
        time_ns, flag, pam_type, outcome, user, remote = entry[:6]
        service = entry[6] if width == _FIELDS else b""
        when = int(time_ns) if time_ns.isdigit() else 0
        drops.append(Drop((when, flag == b"U", pam_type, outcome, user, remote, service)))
    return Ledger((count, int(words[1]), tuple(drops)))
