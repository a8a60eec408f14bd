"""The spool record: what the hook's foreground captured of one PAM run.

The foreground is on every login's critical path, so it neither imports
msgspec nor builds the ``LoginEvent``: it stores the raw PAM/SSH environment
(bounded per value), a random id, the time and the host name in this tiny
format, and the detached publisher turns it into an event (``producer.build``).

Format: ``MAGIC`` then ``KEY=VALUE`` items separated by NUL bytes. Environment
values cannot contain NUL, so the format needs no escaping and cannot be
confused by any byte an attacker chooses. This module imports only ``os``.
"""

from __future__ import annotations

import os

MAGIC = b"LWCAP1\n"
SUFFIX = ".cap"

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
RECORD_LIMIT = len(MAGIC) + 4096 + (len(CAPTURED) - 1) * (VALUE_LIMIT + 32) + AUTH_INFO_LIMIT


def record(
    environ: os._Environ[bytes] | dict[bytes, bytes], outcome: str, now_ns: int
) -> tuple[str, bytes]:
    """Build one record from the hook's environment; returns (file name, bytes)."""
    event_id = os.urandom(16).hex()
    items = [
        b"LW_ID=" + event_id.encode(),
        b"LW_TIME=%d" % now_ns,
        b"LW_OUTCOME=" + outcome.encode(),
        b"LW_NODE=" + os.uname().nodename.encode(),
    ]
    for key in CAPTURED:
        value = environ.get(key)
        if value is not None:
            limit = AUTH_INFO_LIMIT if key == b"SSH_AUTH_INFO_0" else VALUE_LIMIT
            # One byte past the limit tells the builder the value was cut.
            items.append(key + b"=" + value[: limit + 1])
    return f"{now_ns:020d}-{event_id}{SUFFIX}", MAGIC + b"\0".join(items)


def parse(data: bytes) -> dict[str, bytes]:
    """The items of a record (keys as text, values as raw bytes).

    Raises:
        ValueError: not a capture record.
    """
    if not data.startswith(MAGIC):
        raise ValueError("not a loginwatch capture record")
    items: dict[str, bytes] = {}
    for item in data[len(MAGIC) :].split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            items[key.decode("ascii", "replace")] = value
    return items
