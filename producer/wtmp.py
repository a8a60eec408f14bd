"""Logouts from wtmp, paired as ``last`` pairs them (``producer.sessions`` says the rules).

The cursor in ``state["wtmp"]``: ``ino`` and ``offset`` (how far this file was read),
``open`` (line → the login record still open there, hex-encoded: the bytes are a user's
and a remote side's) and ``down`` (the time of a shutdown record not yet followed by a
boot).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from producer import sessions
from producer.sessions import (
    BOOT_TIME,
    DEAD_PROCESS,
    MAX_LOGOUTS,
    MAX_OPEN,
    MAX_RECORDS,
    RUN_LVL,
    USER_PROCESS,
    UTMP,
)
from schemas import event as ev
from schemas.records import Logout, LogoutEnd, LogoutSource

SIZE = UTMP.size


def recover(path: str, state: dict[str, Any], host: str) -> list[Logout]:
    """The logouts ``path`` recorded since ``state["wtmp"]``, which it moves on (in memory:
    ``Recovery.commit`` saves it). A missing file gives none.

    Raises:
        OSError: the file cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        # No file yet: one made later is read from its start (nothing of it is past).
        state.setdefault("wtmp", {"ino": None, "offset": 0, "open": {}, "down": None})
        return []
    try:
        st = os.fstat(fd)
        cursor = state.get("wtmp")
        reader = _Reader(host, cursor if isinstance(cursor, dict) else None)
        if reader.first:
            # The first look: learn what is open in the last MAX_RECORDS, send none of it.
            start = max(0, st.st_size // SIZE - MAX_RECORDS) * SIZE
        elif reader.cursor.get("ino") != st.st_ino or st.st_size < reader.offset:
            reader.rotated(path)
            start = 0
        else:
            start = reader.offset
        reader.read(fd, start)
        state["wtmp"] = reader.saved(st.st_ino)
        return reader.logouts
    finally:
        os.close(fd)


class _Reader:
    def __init__(self, host: str, cursor: dict[str, Any] | None) -> None:
        self.host = host
        self.first = cursor is None
        self.cursor = cursor or {}
        self.offset = int(self.cursor.get("offset", 0))
        opened = self.cursor.get("open", {})
        self.open: dict[str, list[Any]] = opened if isinstance(opened, dict) else {}
        self.down: float | None = self.cursor.get("down")
        self.logouts: list[Logout] = []

    def rotated(self, path: str) -> None:
        """The file was replaced (logrotate): read the rest of the old one first, where
        ``path.1`` is it."""
        try:
            fd = os.open(path + ".1", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if os.fstat(fd).st_ino == self.cursor.get("ino"):
                self.read(fd, self.offset)
        finally:
            os.close(fd)

    def read(self, fd: int, start: int) -> None:
        data = os.pread(fd, MAX_RECORDS * SIZE, start)
        count = len(data) // SIZE
        self.offset = start
        for index in range(count):
            self.record(UTMP.unpack_from(data, index * SIZE))
            self.offset = start + (index + 1) * SIZE
            if len(self.logouts) >= MAX_LOGOUTS:
                return  # the rest at the next flush

    def record(self, fields: tuple[Any, ...]) -> None:
        kind, pid, line, _, user, remote, _, _, _, sec, usec, addr, _ = fields
        line, user = line.rstrip(b"\0"), user.rstrip(b"\0")
        when = sec + usec / 1e6
        if kind == USER_PROCESS and line:
            if line.hex() in self.open or len(self.open) < MAX_OPEN:
                self.open[line.hex()] = [user.hex(), when, pid, remote.rstrip(b"\0").hex(),
                                         addr.hex()]  # fmt: skip
        elif kind == DEAD_PROCESS and line.hex() in self.open:
            self.end(line, self.open.pop(line.hex()), when, LogoutEnd.LOGOUT)
        elif kind == RUN_LVL and user == b"shutdown":
            self.down = when
        elif kind == BOOT_TIME:
            for key, login in list(self.open.items()):
                if self.down is not None:
                    self.end(bytes.fromhex(key), login, self.down, LogoutEnd.DOWN)
                else:
                    self.end(bytes.fromhex(key), login, when, LogoutEnd.CRASH)
            self.open.clear()
            self.down = None

    def end(self, line: bytes, login: list[Any], when: float, end: LogoutEnd) -> None:
        if self.first:
            return
        user_hex, began, pid, remote_hex, addr_hex = login
        user, remote = bytes.fromhex(user_hex), bytes.fromhex(remote_hex)
        addr = bytes.fromhex(addr_hex)
        escaped: list[str] = []
        truncated: list[str] = []
        client = _address(addr)
        rhost = sessions.text(remote, ev.MAX_HOST, "rhost", escaped, truncated)
        if client and socket.inet_ntop(socket.AF_INET if len(client) == 4 else socket.AF_INET6,
                                       client) == rhost:  # fmt: skip
            rhost = ""
        found = sessions.logout(
            id=sessions.logout_id("wtmp", self.host, line, user, began, when, pid),
            time=sessions.at(when), host=self.host,
            user=sessions.text(user, ev.MAX_NAME, "user", escaped, truncated),
            tty=sessions.text(line, ev.MAX_SHORT, "tty", escaped, truncated),
            login_time=sessions.at(began), client_ip=client, rhost=rhost,
            service="login" if line.startswith(b"tty") and not remote else "",
            source=LogoutSource.WTMP, end=end, session_pid=pid if 0 <= pid < 2**31 else 0,
            escaped=tuple(escaped), truncated=tuple(truncated),
        )  # fmt: skip
        if found is not None:
            self.logouts.append(found)

    def saved(self, ino: int) -> dict[str, Any]:
        return {"ino": ino, "offset": self.offset, "open": self.open, "down": self.down}


def _address(raw: bytes) -> bytes:
    """``ut_addr_v6``: IPv4 in its first 4 bytes (the rest zero), as ``last`` reads it."""
    if not any(raw):
        return b""
    return raw[:4] if not any(raw[4:]) else raw
