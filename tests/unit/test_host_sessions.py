"""The host side's session facts: logouts from wtmp (paired as ``last`` pairs them) and from
a wtmpdb database, the session links the hook reads from /proc, a heartbeat's addresses."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from producer import session_link, wtmp, wtmpdb
from producer.build import build_event
from producer.reports import host_addresses
from producer.sessions import BOOT_TIME, DEAD_PROCESS, RUN_LVL, USER_PROCESS, UTMP
from schemas.records import LogoutEnd, LogoutSource
from tests.support.hookrun import PAM_ENV

UTC = timezone.utc  # datetime.UTC is 3.11's; these tests run on 3.9 too
T0 = 1796632800  # 2026-12-07 08:40:00 UTC


def utmp(
    kind: int, line: str, user: str, when: float, *, pid: int = 0, host: str = "", addr: str = ""
) -> bytes:
    raw = socket.inet_aton(addr) + bytes(12) if addr else bytes(16)
    sec, usec = int(when), round((when - int(when)) * 1e6)
    return UTMP.pack(kind, pid, line.encode(), line[-4:].encode(), user.encode(), host.encode(),
                     0, 0, 0, sec, usec, raw, bytes(20))  # fmt: skip


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_wtmp_logouts_pair_as_last_pairs_them(tmp_path: Path) -> None:
    path = tmp_path / "wtmp"
    path.write_bytes(
        utmp(BOOT_TIME, "~", "reboot", T0 - 3600)
        + utmp(USER_PROCESS, "pts/0", "carol", T0 - 60, pid=900, host="192.0.2.9", addr="192.0.2.9")
    )
    state: dict[str, Any] = {}
    # The first look sends none of the past, and learns carol's session is open.
    assert wtmp.recover(str(path), state, "web-01") == []
    with path.open("ab") as out:
        out.write(
            utmp(USER_PROCESS, "pts/1", "alice", T0, pid=4242, host="192.0.2.10", addr="192.0.2.10")
        )
        out.write(utmp(DEAD_PROCESS, "pts/0", "", T0 + 30, pid=900))  # carol leaves
        out.write(utmp(DEAD_PROCESS, "pts/1", "", T0 + 423.5, pid=4242))  # alice after 7m03s
        out.write(
            utmp(USER_PROCESS, "pts/2", "bob", T0 + 500, pid=77, host="laptop.example", addr="")
        )
        out.write(utmp(RUN_LVL, "~", "shutdown", T0 + 600))
        out.write(utmp(BOOT_TIME, "~", "reboot", T0 + 700))  # bob's session: "down"
    found = wtmp.recover(str(path), state, "web-01")
    shown = [(o.user, o.tty, o.login_time, o.time, o.end) for o in found]
    assert shown == [
        ("carol", "pts/0", at(T0 - 60), at(T0 + 30), LogoutEnd.LOGOUT),
        ("alice", "pts/1", at(T0), at(T0 + 423.5), LogoutEnd.LOGOUT),
        ("bob", "pts/2", at(T0 + 500), at(T0 + 600), LogoutEnd.DOWN),
    ]
    alice = found[1]
    assert alice.length == 423.5
    assert (alice.client_ip, alice.rhost) == (socket.inet_aton("192.0.2.10"), "")
    assert (alice.session_pid, alice.source, alice.kind) == (4242, LogoutSource.WTMP, "logout")
    assert (found[2].client_ip, found[2].rhost) == (b"", "laptop.example")
    # Read again: nothing new, and the same record gives the same id on a retry.
    assert wtmp.recover(str(path), dict(state), "web-01") == []
    again = wtmp.recover(str(path), {"wtmp": {"ino": path.stat().st_ino, "offset": 2 * UTMP.size,
                                              "open": {}, "down": None}}, "web-01")  # fmt: skip
    assert alice.id in {o.id for o in again}
    if shutil.which("last"):
        assert_last_agrees(path, found)


def assert_last_agrees(path: Path, found: list[Any]) -> None:
    """util-linux ``last`` on the same file shows the same users, lines and times."""
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}
    out = subprocess.run(["last", "-F", "-w", "-f", str(path)], capture_output=True, text=True,
                         env=env, check=True).stdout  # fmt: skip
    for logout in found:
        began = logout.login_time.strftime("%a %b %e %H:%M:%S %Y")
        row = [line for line in out.splitlines() if line.startswith(logout.user + " ")]
        assert row and logout.tty in row[0] and began in row[0], (out, logout)
        if logout.end is LogoutEnd.LOGOUT:
            assert logout.time.strftime("- %a %b %e %H:%M:%S %Y") in row[0], (out, logout)
        else:
            assert "- down" in row[0], (out, logout)


def test_a_rotated_wtmp_is_read_on_from_its_old_file_then_from_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "wtmp"
    path.write_bytes(utmp(USER_PROCESS, "pts/0", "alice", T0, pid=1, host="", addr="192.0.2.10"))
    state: dict[str, Any] = {}
    wtmp.recover(str(path), state, "h")
    with path.open("ab") as out:
        out.write(utmp(DEAD_PROCESS, "pts/0", "", T0 + 5, pid=1))
    path.rename(tmp_path / "wtmp.1")  # logrotate; the new file starts empty
    path.write_bytes(utmp(USER_PROCESS, "pts/3", "bob", T0 + 10, pid=2))
    assert [o.user for o in wtmp.recover(str(path), state, "h")] == ["alice"]
    with path.open("ab") as out:
        out.write(utmp(DEAD_PROCESS, "pts/3", "", T0 + 20, pid=2))
    assert [o.user for o in wtmp.recover(str(path), state, "h")] == ["bob"]


def test_hostile_wtmp_text_is_escaped_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "wtmp"
    path.write_bytes(b"")
    state: dict[str, Any] = {}
    wtmp.recover(str(path), state, "h")
    record = bytearray(utmp(USER_PROCESS, "pts/0", "x", T0, pid=1))
    record[44:76] = b"\xff\x1b[31m" + b"u" * 26  # ut_user: not UTF-8, a terminal escape
    path.write_bytes(bytes(record) + utmp(DEAD_PROCESS, "pts/0", "", T0 + 1, pid=1) + b"\0" * 100)
    [logout] = wtmp.recover(str(path), state, "h")
    assert logout.user.startswith("\\xff\x1b[31m") and logout.escaped == ("user",)


WTMPDB_TABLE = (  # as wtmpdb (lib/sqlite.c) creates it
    "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL,"
    " Login INTEGER, Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;"
)


def test_wtmpdb_logouts_are_sent_once_each_with_their_length(tmp_path: Path) -> None:
    path = tmp_path / "wtmp.db"
    db = sqlite3.connect(path)
    # STRICT needs SQLite 3.37 (Debian 11 has 3.34): the reader does not depend on it.
    strict = sqlite3.sqlite_version_info >= (3, 37)
    db.execute(WTMPDB_TABLE if strict else WTMPDB_TABLE.replace(" STRICT", ""))
    insert = "INSERT INTO wtmp (Type,User,Login,TTY,RemoteHost,Service) VALUES(?,?,?,?,?,?)"
    db.execute(insert, (1, "reboot", (T0 - 3600) * 10**6, "~", "6.12.0", None))
    old = db.execute(insert, (3, "carol", (T0 - 100) * 10**6, "pts/0", "192.0.2.9", "sshd"))
    db.execute("UPDATE wtmp SET Logout = ? WHERE ID = ?", ((T0 - 50) * 10**6, old.lastrowid))
    db.commit()
    state: dict[str, Any] = {}
    assert wtmpdb.recover(str(path), state, "web-01") == []  # the past is not sent
    row = db.execute(insert, (3, "alice", T0 * 10**6, "pts/1", "192.0.2.10", "sshd"))
    console = db.execute(insert, (3, "root", T0 * 10**6, "tty1", "", "login"))
    db.commit()
    assert wtmpdb.recover(str(path), state, "web-01") == []  # still open
    db.execute("UPDATE wtmp SET Logout = ? WHERE ID = ?", (T0 * 10**6 + 423_500_000, row.lastrowid))
    db.execute("UPDATE wtmp SET Logout = ? WHERE ID = ?", ((T0 + 900) * 10**6, console.lastrowid))
    db.commit()
    db.close()
    alice, root = wtmpdb.recover(str(path), state, "web-01")
    assert (alice.user, alice.tty, alice.length, alice.service) == ("alice", "pts/1", 423.5, "sshd")
    assert alice.client_ip == socket.inet_aton("192.0.2.10") and alice.kind == "logout"
    assert alice.source is LogoutSource.WTMPDB
    assert (root.user, root.kind, root.length) == ("root", "console-end", 900.0)
    assert wtmpdb.recover(str(path), state, "web-01") == []


def test_a_file_that_is_no_wtmpdb_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "wtmp.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(wtmpdb.Unreadable):
        wtmpdb.recover(str(path), {"wtmpdb": {"logout": 0, "id": 0}}, "h")


def test_the_hook_reads_processes_and_finds_only_a_root_sshd_above_itself() -> None:
    name, parent, started = session_link.process(os.getpid()) or (b"", 0, 0)
    assert name and parent == os.getppid() and started > 0
    # Under a developer's ssh session the walk finds that session's monitor; else none.
    found = session_link.sshd_session(os.getpid())
    if found is not None:
        assert (session_link.process(found[0]) or (b"",))[0] in session_link.SSHD_NAMES
        assert session_link.is_root(found[0])
    assert session_link.sshd_session(1) is None
    assert session_link.process(2**22 + 1) is None
    assert session_link.sshd_session(2**22 + 1) is None


def test_the_session_links_travel_in_the_event() -> None:
    items = {k: v.encode() for k, v in PAM_ENV.items()}
    items.update({"LW_ID": os.urandom(16).hex().encode(), "LW_TIME": b"1796632800000000000"})
    items.update({"LW_AUDIT": b"36", "LW_LOGINUID": b"4242", "LW_SSHD": b"31856 98765"})
    event = build_event(items, "web-01")
    assert (event.audit_session, event.login_uid) == (36, 4242)
    assert (event.session_pid, event.session_start) == (31856, 98765)
    items.update({"LW_AUDIT": b"4294967295", "LW_LOGINUID": b"-1", "LW_SSHD": b"1 2 3"})
    event = build_event(items, "web-01")
    assert (event.audit_session, event.login_uid, event.session_pid) == (None, None, 0)


def test_a_heartbeat_lists_the_hosts_own_addresses_only(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
        "     |-- 10.0.0.5\n        /32 host LOCAL\n     |-- 10.0.0.0\n        /24 link UNICAST\n"
        "     |-- 127.0.0.1\n        /32 host LOCAL\n"
        "     |-- 198.51.100.7\n        /32 host LOCAL\n"
        "Local:\n     |-- 10.0.0.5\n        /32 host LOCAL\n"
    )
    (tmp_path / "if_inet6").write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe800000000000000000000000000001 02 40 20 80     eth0\n"
        "20010db8000000000000000000000010 02 40 00 80     eth0\n"
    )
    found = host_addresses(str(tmp_path))
    assert [socket.inet_ntop(socket.AF_INET6 if len(a) == 16 else socket.AF_INET, a)
            for a in found] == ["10.0.0.5", "198.51.100.7", "2001:db8::10"]  # fmt: skip
    assert host_addresses(str(tmp_path / "missing")) == ()


def test_a_record_file_that_appears_after_the_first_look_is_read_from_its_start(
    tmp_path: Path,
) -> None:
    path, database = tmp_path / "wtmp", tmp_path / "wtmp.db"
    state: dict[str, Any] = {}
    assert wtmp.recover(str(path), state, "h") == []
    assert wtmpdb.recover(str(database), state, "h") == []
    path.write_bytes(
        utmp(USER_PROCESS, "pts/0", "alice", T0, pid=7)
        + utmp(DEAD_PROCESS, "pts/0", "", T0 + 3, pid=7)
    )
    db = sqlite3.connect(database)
    db.execute(WTMPDB_TABLE.replace(" STRICT", ""))
    db.execute("INSERT INTO wtmp (Type,User,Login,Logout,TTY) VALUES(3,'bob',?,?,'pts/1')",
               (T0 * 10**6, (T0 + 9) * 10**6))  # fmt: skip
    db.commit()
    db.close()
    assert [o.user for o in wtmp.recover(str(path), state, "h")] == ["alice"]
    assert [o.length for o in wtmpdb.recover(str(database), state, "h")] == [9.0]
