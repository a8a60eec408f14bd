"""Logouts from wtmpdb (``/var/lib/wtmpdb/wtmp.db``: Debian 13 and later), read-only.

pam_wtmpdb writes one row per session (``Type`` 3, USER_PROCESS) at open_session and
fills in its ``Logout`` (microseconds since 1970) at close_session. The cursor in
``state["wtmpdb"]`` is the last (Logout, ID) sent; rows are taken in that order. A session
a crash cut short keeps no Logout: wtmpdb shows it as ``crash`` from the next boot row, and
we send nothing for it.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import quote

from producer import sessions
from producer.sessions import MAX_LOGOUTS
from schemas import event as ev
from schemas.errors import LoginwatchError
from schemas.records import Logout, LogoutEnd, LogoutSource

USER_PROCESS = 3
_ROWS = (
    "SELECT ID, User, Login, Logout, TTY, RemoteHost, Service FROM wtmp"
    " WHERE Type = ? AND Logout IS NOT NULL AND (Logout > ? OR (Logout = ? AND ID > ?))"
    " ORDER BY Logout, ID LIMIT ?"
)


class Unreadable(LoginwatchError):
    """No wtmpdb database there (or sqlite3 is missing from this Python)."""


def recover(path: str, state: dict[str, Any], host: str) -> list[Logout]:
    """The sessions ``path`` saw end since ``state["wtmpdb"]``, which it moves on. No file
    yet: one made later is read from its first row (nothing of it is past).

    Raises:
        Unreadable: not a wtmpdb database, or sqlite3 cannot open it.
    """
    if not os.path.exists(path):
        state.setdefault("wtmpdb", {"logout": 0, "id": 0})
        return []
    try:
        import sqlite3  # noqa: PLC0415 - a host Python may lack it: then no wtmpdb
    except ImportError as exc:
        raise Unreadable(f"no sqlite3 in this Python: {exc}") from None
    try:
        db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error as exc:
        raise Unreadable(str(exc)) from None
    try:
        cursor = state.get("wtmpdb")
        if not isinstance(cursor, dict):
            # The first look: start from the latest logout, send none of the past.
            row = db.execute("SELECT Logout, ID FROM wtmp WHERE Logout IS NOT NULL"
                             " ORDER BY Logout DESC, ID DESC LIMIT 1").fetchone()  # fmt: skip
            state["wtmpdb"] = {"logout": row[0] if row else 0, "id": row[1] if row else 0}
            return []
        last, last_id = int(cursor.get("logout", 0)), int(cursor.get("id", 0))
        rows = db.execute(_ROWS, (USER_PROCESS, last, last, last_id, MAX_LOGOUTS)).fetchall()
    except (sqlite3.Error, ValueError, TypeError) as exc:
        raise Unreadable(str(exc)) from None
    finally:
        db.close()
    found = []
    for row in rows:
        logout = _logout(row, host)
        if logout is not None:
            found.append(logout)
        state["wtmpdb"] = {"logout": row[3], "id": row[0]}
    return found


def _logout(row: tuple[Any, ...], host: str) -> Logout | None:
    row_id, user, login, logout, tty, remote, service = row
    escaped: list[str] = []
    truncated: list[str] = []
    client = _address(remote or "")
    return sessions.logout(
        id=sessions.logout_id("wtmpdb", host, row_id, login, logout),
        time=sessions.at(int(logout) / 1e6), host=host,
        user=sessions.text(_raw(user), ev.MAX_NAME, "user", escaped, truncated),
        tty=sessions.text(_raw(tty), ev.MAX_SHORT, "tty", escaped, truncated),
        login_time=sessions.at(int(login or 0) / 1e6), client_ip=client,
        rhost="" if client else sessions.text(_raw(remote), ev.MAX_HOST, "rhost", escaped,
                                              truncated),
        service=sessions.text(_raw(service), ev.MAX_SHORT, "service", escaped, truncated),
        source=LogoutSource.WTMPDB, end=LogoutEnd.LOGOUT,
        escaped=tuple(escaped), truncated=tuple(truncated),
    )  # fmt: skip


def _raw(value: object) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")


def _address(text: object) -> bytes:
    """RemoteHost's raw address when it is one (else the text goes into ``rhost``)."""
    if not isinstance(text, str):
        return b""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            raw = socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        if socket.inet_ntop(family, raw) == text:
            return raw
    return b""
