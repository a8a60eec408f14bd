"""What ties a PAM run to the login session it belongs to, read from the kernel.

A ``sudo`` or ``su`` in a session that began with an SSH login should name that login.
Two links, both read by the hook's foreground from ``/proc`` (never from the environment,
which is partly the user's), in microseconds:

- the kernel's audit session (``/proc/self/sessionid``) and login uid
  (``/proc/self/loginuid``): pam_loginuid sets both at the login, and every process of
  the session inherits them. Unset (``4294967295``) without pam_loginuid, or where it
  cannot write them (a container without CAP_AUDIT_CONTROL);
- the session's sshd process: the nearest ancestor of the hook that is a root sshd
  (``sshd`` or OpenSSH 9.8's ``sshd-session``, real and effective uid 0), with its start
  time in clock ticks since boot, so a later process with its pid is not taken for it.
  At the SSH login's own hook it is the hook's parent, the session's privileged monitor
  (``sshd: alice [priv]``); sudo's hook finds the same process above sudo, the user's
  shell and the user's sshd process.

What a user can and cannot forge is in docs/host-hook.md, "Escalation". This module
imports only ``os``: it runs on the login's critical path.
"""

from __future__ import annotations

import os

SSHD_NAMES = (b"sshd", b"sshd-session")
# Ancestors looked at, at most: a session is a handful deep; a loop cannot happen, but a
# bound costs nothing.
MAX_DEPTH = 32


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def audit_ids(proc: str = "/proc/self") -> tuple[bytes, bytes]:
    """(audit session id, login uid) as the kernel gives them (``4294967295``: unset), or
    ``b""`` each when it cannot say (no audit support, no /proc)."""
    found = []
    for name in ("sessionid", "loginuid"):
        try:
            found.append(_read(f"{proc}/{name}").strip())
        except OSError:
            found.append(b"")
    return found[0], found[1]


def process(pid: int) -> tuple[bytes, int, int] | None:
    """(name, parent pid, start time in ticks since boot) of ``pid``, or None when it is
    gone (or /proc says something we cannot read)."""
    try:
        stat = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    # The name is in parentheses and may hold anything, ")" and spaces too: the fields
    # after it start past the last ")".
    open_at, close_at = stat.find(b"("), stat.rfind(b")")
    fields = stat[close_at + 2 :].split()
    if open_at < 0 or close_at < open_at or len(fields) < 20:
        return None
    try:
        return stat[open_at + 1 : close_at], int(fields[1]), int(fields[19])
    except ValueError:
        return None


def is_root(pid: int) -> bool:
    """Whether ``pid`` runs with real and effective uid 0 (``/proc/PID/status``)."""
    try:
        status = _read(f"/proc/{pid}/status")
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            ids = line.split()[1:3]
            return ids == [b"0", b"0"]
    return False


def sshd_session(start: int) -> tuple[int, int] | None:
    """(pid, start ticks) of the nearest root sshd at or above ``start``, or None."""
    pid = start
    for _ in range(MAX_DEPTH):
        if pid <= 1:
            return None
        found = process(pid)
        if found is None:
            return None
        name, parent, started = found
        if name in SSHD_NAMES and is_root(pid):
            return pid, started
        pid = parent
    return None


def items() -> dict[bytes, bytes]:
    """The capture items of this run's links (``LW_AUDIT``, ``LW_LOGINUID``, ``LW_SSHD``:
    ``PID START``); an item is left out when the kernel could not say. Never raises: a
    link the kernel cannot give is no reason to lose the event."""
    try:
        return _items()
    except Exception:
        return {}


def _items() -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    session, login_uid = audit_ids()
    if session:
        found[b"LW_AUDIT"] = session
    if login_uid:
        found[b"LW_LOGINUID"] = login_uid
    sshd = sshd_session(os.getppid())
    if sshd is not None:
        found[b"LW_SSHD"] = b"%d %d" % sshd
    return found
