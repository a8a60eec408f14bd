"""Logouts on a host that replaced wtmp by wtmpdb: Debian 13's own sshd (built with
libwtmpdb) records a real terminal session in a real /var/lib/wtmpdb/wtmp.db, and the host
side's reader (producer/wtmpdb.py) turns it into one Logout with the session's length,
once, as the row says it."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from producer import wtmpdb
from schemas.records import LogoutSource
from tests.support.chroot import Chroot, unpacked
from tests.support.hookrun import wait_for

pytestmark = pytest.mark.timeout(600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_sessions(debian: Chroot) -> int:
    database = debian.path("/var/lib/wtmpdb/wtmp.db")
    if not database.exists():
        return -1
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM wtmp WHERE Type = 3 AND Logout IS NULL")
                   .fetchone()[0])  # fmt: skip


def terminal_session(debian: Chroot, tmp_path: Path, user: str, command: str) -> None:
    """``user`` logs in with a key and a terminal (``ssh -tt``) through the chroot's sshd."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    debian.run(["useradd", "-m", "-s", "/bin/sh", user])
    home = debian.path(f"/home/{user}/.ssh")
    home.mkdir(mode=0o700)
    (home / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    debian.run(["chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"])
    debian.run(["ssh-keygen", "-A"])
    debian.path("/run/sshd").mkdir(exist_ok=True)
    port, log = free_port(), tmp_path / "sshd.log"
    sshd = debian.popen(
        ["/usr/sbin/sshd", "-D", "-e", "-p", str(port), "-o", "ListenAddress=127.0.0.1",
         "-o", "UsePAM=yes", "-o", "PasswordAuthentication=no"],
        log=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert sshd.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        done = subprocess.run(
            ["ssh", "-tt", "-p", str(port), "-i", str(key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
             f"{user}@127.0.0.1", command],
            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + log.read_text()
        # sshd closes the session (and writes its end) a moment after the client has left.
        assert wait_for(lambda: open_sessions(debian) == 0, timeout=15), log.read_text()
    finally:
        sshd.terminate()
        sshd.wait(timeout=20)


def test_a_real_wtmpdb_session_comes_back_once_with_its_length(tmp_path: Path) -> None:
    with unpacked("13") as debian:
        database = debian.path("/var/lib/wtmpdb/wtmp.db")
        state: dict[str, Any] = {}
        # The first look (the file may not be there yet: it comes with the first session).
        assert wtmpdb.recover(str(database), state, "deb13") == []
        terminal_session(debian, tmp_path, "lwtest", "sleep 1.2")
        assert database.exists(), "Debian 13's sshd writes wtmpdb"
        rows = (
            sqlite3.connect(database)
            .execute("SELECT User, Login, Logout, TTY, RemoteHost FROM wtmp WHERE Type = 3")
            .fetchall()
        )
        found = wtmpdb.recover(str(database), state, "deb13")
        again = wtmpdb.recover(str(database), state, "deb13")
    [(user, login, logout, tty, remote)] = rows
    [session] = found
    assert (session.user, session.tty, session.source) == (user, tty, LogoutSource.WTMPDB)
    assert (user, remote) == ("lwtest", "127.0.0.1")
    assert session.client_ip == socket.inet_aton("127.0.0.1")
    assert session.login_time is not None
    assert round(session.login_time.timestamp() * 1e6) == login
    assert round(session.time.timestamp() * 1e6) == logout
    assert session.length is not None and 1.2 <= session.length < 10
    assert again == []  # the cursor moved: sent once
