"""What the logout readers share (``producer.wtmp``, ``producer.wtmpdb``,
``producer.logouts``): the rules, the cursor's file, record text as event text.

Logouts are recovered at flush time from the records root writes: wtmp and wtmpdb.

On stock Debian the hook runs at open_session only (``user_readenv=1``: docs/host-hook.md),
so no hook sees a session end. The session records do, and users cannot write them:

- wtmp (``[host] wtmp``): 384-byte utmp records, parsed with ``struct``. sshd writes a
  USER_PROCESS record when a session with a terminal starts and a DEAD_PROCESS record on
  the same line when it ends; a boot (``reboot``) ends whatever was open: ``down`` after a
  shutdown record, ``crash`` without one. That is how ``last`` pairs them, and so do we.
- wtmpdb (``[host] wtmpdb``, Debian 13's replacement): one row per session, its Logout
  filled in when it ends (read-only, with ``sqlite3``).

Each flush reads on from a cursor kept in the spool directory (``sessions.json``): where it
stopped in wtmp (inode and offset, and the sessions still open there), and the last logout
it sent from wtmpdb. The cursor moves only once the broker confirmed the logouts
(``Recovery.commit``), and a logout's id is derived from its record, so one read twice is
the same message. The first flush on a host sends none of the past: it only learns where
the records end and which sessions are open (a file that is not there yet is read from its
start once it appears: Debian 13's wtmp.db comes with the first session). A rotated wtmp
(a new inode) is read from its start, after the rest of the old one where ``wtmp.1`` is it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from datetime import datetime, timezone
from typing import Any

from producer.build import cut_escaped
from producer.shared import log
from schemas.event import escape_bytes
from schemas.records import Logout
from schemas.version import VERSION

STATE_FILE = "sessions.json"
UTMP = struct.Struct("<h2xi32s4s32s256shhi2i16s20s")  # glibc's struct utmp on Linux
RUN_LVL, BOOT_TIME, USER_PROCESS, DEAD_PROCESS = 1, 2, 7, 8
# Bounds per flush: records read, logouts sent, sessions remembered as open.
MAX_RECORDS = 50_000
MAX_LOGOUTS = 1000
MAX_OPEN = 4096


def load_state(spool_dir: str) -> dict[str, Any]:
    try:
        fd = os.open(os.path.join(spool_dir, STATE_FILE), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="ascii") as file:
            state = json.loads(file.read(4 << 20))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log(f"logouts: cursor unreadable, starting from the records' end: {exc}")
        return {}
    return state if isinstance(state, dict) else {}


def save_state(spool_dir: str, state: dict[str, Any]) -> None:
    """Write the cursor (atomically: a crash leaves the old one or the new one).

    Raises:
        OSError: it cannot be written.
    """
    path = os.path.join(spool_dir, STATE_FILE)
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        json.dump(state, out, separators=(",", ":"))
    os.replace(temp, path)


def logout_id(*parts: object) -> bytes:
    """A logout's id: the same record gives the same id, whoever reads it how often."""
    return hashlib.sha256(repr(parts).encode()).digest()[:16]


def at(seconds: float) -> datetime:
    """A record's time, clamped to what the wire takes (a damaged record's 0 is 1970)."""
    return datetime.fromtimestamp(min(max(seconds, 0.0), 9.2e9), timezone.utc)


def logout(**fields: Any) -> Logout | None:
    """A ``Logout`` of the record's fields, or None when they do not make one (logged)."""
    try:
        return Logout(hook_version=VERSION, **fields)
    except (TypeError, ValueError) as exc:
        log(f"logouts: a record skipped: {exc}")
        return None


def text(raw: bytes, limit: int, name: str, escaped: list[str], truncated: list[str]) -> str:
    """A record's bytes as event text: escaped when not UTF-8, cut to ``limit`` (the
    field named in ``escaped`` / ``truncated``, as the hook's events do)."""
    value, was_escaped = escape_bytes(raw)
    if was_escaped:
        escaped.append(name)
    if len(value) > limit:
        truncated.append(name)
        value = cut_escaped(raw, limit) if was_escaped else value[:limit]
    return value
