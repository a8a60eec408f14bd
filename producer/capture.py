"""The spool record: what the hook's foreground captured of one PAM run.

The foreground is on every login's critical path, so it neither imports
msgspec nor builds the ``LoginEvent``: it stores the raw PAM/SSH environment
(bounded per value), a random id, the time and the host name in this tiny
format, and the detached publisher turns it into an event (``producer.build``).

Format: a 48-byte header, then ``KEY=VALUE`` items separated by NUL bytes.
Environment values cannot contain NUL, so the items need no escaping and cannot
be confused by any byte an attacker chooses. The header (``LWCAP2 U|L TIME LEN
CRC``) says whether the record is urgent (a login or logout: ``urgent``), when it
was captured, and the length and CRC-32 of the items, so a record is known to be
complete wherever it lies: in a preallocated slot overwritten in place, in a
temp file a deadline interrupted, after a power cut. The first format (``MAGIC``
then the items, no header) is still read: records spooled before an upgrade.
This module imports only ``os``, ``binascii`` and ``producer.session_link`` (which
imports ``os``).

The hook's own items: ``LW_ID``, ``LW_TIME``, ``LW_OUTCOME``, ``LW_NODE``, and the session
links the kernel gives (``producer.session_link``: ``LW_AUDIT``, ``LW_LOGINUID``,
``LW_SSHD``), read from /proc, never from the environment.

Which copy of a variable counts (``environment``): pam_exec builds the hook's
environment as the PAM environment, then the PAM items it sets itself
(PAM_SERVICE, PAM_USER, PAM_TTY, PAM_RHOST, PAM_RUSER, each when set, in
that order), then PAM_TYPE. The PAM environment is partly the user's when a
pam_env that reads ~/.pam_environment ran earlier in the stack, so it may
hold a ``PAM_USER=root`` of their own, and CPython's ``os.environ`` keeps the
*first* copy of a duplicated name: the user's. We take the PAM items from
pam_exec's own block at the end of the raw environment and ignore every
PAM_* name before it. ``SSH_CONNECTION`` and ``SSH_AUTH_INFO_0`` are not
pam_exec's: sshd puts them in the PAM environment, where pam_env could
overwrite them. Only the placement keeps them sshd's own: install-host.sh
puts the hook before every pam_env line, at open_session only, and refuses a
stack whose auth part reads the user's file.
"""

from __future__ import annotations

import os
from binascii import crc32

from producer import session_link

MAGIC = b"LWCAP1\n"  # the first format: items only (read, never written)
MAGIC2 = b"LWCAP2 "
HEADER_SIZE = 48
SUFFIX = ".cap"
_URGENT_TYPES = (b"open_session", b"close_session")

# What the hook keeps of its environment, and how much of each value: more
# than any event field may hold, so the builder still sees (and records) a cut.
CAPTURED = (
    b"PAM_USER",
    b"PAM_RUSER",
    b"PAM_RHOST",
    b"PAM_SERVICE",
    b"PAM_TTY",
    b"PAM_TYPE",
    b"SSH_CONNECTION",
    b"SSH_AUTH_INFO_0",
)
VALUE_LIMIT = 1024
# Room for an RSA-16384 public key blob plus a second auth method.
AUTH_INFO_LIMIT = 8192
# Upper bound of one record's size: what the spool's byte limit counts with.
RECORD_LIMIT = HEADER_SIZE + 4096 + (len(CAPTURED) - 1) * (VALUE_LIMIT + 32) + AUTH_INFO_LIMIT

# The items pam_exec appends after the PAM environment, in its order; PAM_TYPE
# always comes last (Linux-PAM modules/pam_exec/pam_exec.c, env_items).
PAM_EXEC_ITEMS = (b"PAM_SERVICE", b"PAM_USER", b"PAM_TTY", b"PAM_RHOST", b"PAM_RUSER", b"PAM_TYPE")
RAW_ENVIRON = "/proc/self/environ"
_KEPT = (b"PAM_", b"SSH_")


def environment(path: str = RAW_ENVIRON) -> dict[bytes, bytes]:
    """The hook's environment with pam_exec's own PAM items (see the module doc).

    Reads the raw environment block the kernel kept from ``execve`` (every
    copy, in order); without ``/proc`` it falls back to ``os.environb``,
    which holds the first copy of each name.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return dict(os.environb)
    try:
        chunks: list[bytes] = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return trusted(b"".join(chunks).split(b"\0"))


def trusted(entries: list[bytes]) -> dict[bytes, bytes]:
    """``NAME=VALUE`` entries in environment order → the values the hook may use.

    With pam_exec's block at the end (it ends with PAM_TYPE), PAM items come
    from that block only. Without one (a run by hand, or a test), the last
    copy of each name counts. Only ``PAM_*`` and ``SSH_*`` names are kept: the
    rest of a PAM environment, thousands of variables or not, is skipped
    without being parsed. (Dropping the others cannot join a forged block to
    pam_exec's: the block starts at PAM_SERVICE, whatever comes before it.)
    """
    pairs = [
        entry.partition(b"=") for entry in entries if entry.startswith(_KEPT) and b"=" in entry
    ]
    start = _pam_exec_block(pairs)
    if start == len(pairs):
        return {name: value for name, _, value in pairs}
    env = {name: value for name, _, value in pairs[:start] if name not in PAM_EXEC_ITEMS}
    env.update((name, value) for name, _, value in pairs[start:])
    return env


def _pam_exec_block(pairs: list[tuple[bytes, bytes, bytes]]) -> int:
    """Where pam_exec's block starts: the tail whose names follow its order.

    pam_exec's first item, PAM_SERVICE, is always set and first in its order,
    so no entry of the PAM environment can pass for part of the block.
    """
    if not pairs or pairs[-1][0] != b"PAM_TYPE":
        return len(pairs)
    start, rank = len(pairs) - 1, len(PAM_EXEC_ITEMS) - 1
    while start > 0:
        name = pairs[start - 1][0]
        if name not in PAM_EXEC_ITEMS[:rank]:
            break
        rank = PAM_EXEC_ITEMS.index(name)
        start -= 1
    return start


def record(
    environ: os._Environ[bytes] | dict[bytes, bytes], outcome: str, now_ns: int
) -> tuple[str, bytes]:
    """Build one record from the hook's environment; returns (file name, bytes)."""
    event_id = os.urandom(16).hex()
    items = {
        b"LW_ID": event_id.encode(),
        b"LW_TIME": b"%d" % now_ns,
        b"LW_OUTCOME": outcome.encode(),
        b"LW_NODE": os.uname().nodename.encode(),
    }
    items.update(session_link.items())
    for key in CAPTURED:
        value = environ.get(key)
        if value is not None:
            limit = AUTH_INFO_LIMIT if key == b"SSH_AUTH_INFO_0" else VALUE_LIMIT
            # One byte past the limit tells the builder the value was cut.
            items[key] = value[: limit + 1]
    body = b"\0".join(key + b"=" + value for key, value in items.items())
    urgent = is_urgent(items.get(b"PAM_TYPE", b""), items[b"LW_OUTCOME"])
    return f"{now_ns:020d}-{event_id}{SUFFIX}", frame(body, urgent, now_ns)


def frame(body: bytes, urgent: bool, now_ns: int) -> bytes:
    """The record for ``body`` (NUL-separated items) with its header."""
    flag = b"U" if urgent else b"L"
    return b"%s%s %020d %08x %08x\n%s" % (MAGIC2, flag, now_ns, len(body), crc32(body), body)


def is_urgent(pam_type: bytes, outcome: bytes) -> bool:
    """Whether a capture is a login or logout (a successful authentication, too).

    Both items are the hook's own — ``PAM_TYPE`` from pam_exec, the outcome from
    the PAM line's argv — so the remote side cannot promote its failures.
    """
    if outcome == b"failure":
        return False
    return outcome == b"success" or pam_type in _URGENT_TYPES


class Damaged(ValueError):
    """A framed record whose length or CRC does not match: cut short by a crash."""


class Header(tuple[bool, int, int, int]):
    """(urgent, time_ns, length, crc) of a framed record; a plain tuple: ``typing``
    costs 2 ms to import."""

    __slots__ = ()

    @property
    def urgent(self) -> bool:
        return self[0]

    @property
    def time_ns(self) -> int:
        return self[1]

    @property
    def size(self) -> int:
        """The whole record's length, header included."""
        return HEADER_SIZE + self[2]


def header(raw: bytes) -> Header | None:
    """The header at the start of ``raw``, or None: no framed record starts there."""
    if len(raw) < HEADER_SIZE or not raw.startswith(MAGIC2) or raw[HEADER_SIZE - 1] != 10:
        return None
    fields = raw[len(MAGIC2) : HEADER_SIZE - 1].split(b" ")
    if len(fields) != 4 or fields[0] not in (b"U", b"L") or not fields[1].isdigit():
        return None
    try:
        length, crc = int(fields[2], 16), int(fields[3], 16)
    except ValueError:
        return None
    if length > RECORD_LIMIT:
        return None
    return Header((fields[0] == b"U", int(fields[1]), length, crc))


def payload(data: bytes) -> bytes:
    """The items of a complete record, without its header (bytes past it are ignored).

    Raises:
        Damaged: a framed record that is incomplete or damaged (length or CRC).
        ValueError: not a capture record.
    """
    if data.startswith(MAGIC):
        return data[len(MAGIC) :]
    found = header(data)
    if found is None:
        raise ValueError("not a loginwatch capture record")
    body = data[HEADER_SIZE : found.size]
    if len(body) != found[2] or crc32(body) != found[3]:
        raise Damaged("an incomplete or damaged capture record (its length or CRC)")
    return body


def parse(data: bytes) -> dict[str, bytes]:
    """The items of a record (keys as text, values as raw bytes), either format.

    Raises:
        ValueError: not a complete capture record (``payload``).
    """
    return items_of(payload(data))


def items_of(body: bytes) -> dict[str, bytes]:
    """The items of NUL-separated ``KEY=VALUE`` bytes; no check (see ``parse``)."""
    items: dict[str, bytes] = {}
    for item in body.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            items[key.decode("ascii", "replace")] = value
    return items
