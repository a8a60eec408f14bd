"""Reading what the services wrote themselves: the metrics sockets in their runtime directories.

``loginwatch status`` asks only these, never a TCP port: any local user can take a port
first and answer with figures of their choosing, while only root and the service user can
make a file below ``[metrics] runtime_dir`` (``/run/loginwatch``; systemd makes
``worker-N/`` and ``digest/`` in it for the units). So each socket is checked before it is
asked (``untrusted``): every directory from ``/`` down to it owned by root or the service
user and writable by nobody else, the socket theirs too, and the process that answers on
it (``SO_PEERCRED``) running as one of them. Asking is bounded: ``TIMEOUT_S`` per socket,
``MAX_ANSWER`` bytes, ``MAX_SOCKETS`` sockets.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import stat
import struct
import time
from typing import Final

from consumer.core.metrics_server import SOCKET_NAME
from schemas.files import SERVICE_USER

TIMEOUT_S: Final = 2.0
MAX_ANSWER: Final = 1 << 20
MAX_SOCKETS: Final = 64  # a worker per core on a big machine, and the digest


def trusted_uids() -> frozenset[int]:
    """Root, the caller, and the service user (when it exists here)."""
    uids = {0, os.geteuid()}
    with contextlib.suppress(KeyError):
        uids.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    return frozenset(uids)


def untrusted(path: str, uids: frozenset[int]) -> str:
    """Why the socket at ``path`` may not be the service's own ('' when it must be): a
    directory on its way, or the socket itself, that someone else owns or may write."""
    parts = [p for p in os.path.abspath(path).split("/") if p]
    here = "/"
    for name in ["", *parts]:
        here = os.path.join(here, name) if name else "/"
        try:
            st = os.lstat(here)
        except OSError as exc:
            return f"{here}: {exc.strerror}"
        if st.st_uid not in uids:
            return f"{here} is owned by uid {st.st_uid}, not by root or {SERVICE_USER}"
        if here == os.path.abspath(path):
            return "" if stat.S_ISSOCK(st.st_mode) else f"{here} is not a socket"
        if not stat.S_ISDIR(st.st_mode):
            return f"{here} is not a directory"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return f"{here} is writable by group or others"
    return f"{path}: not a socket"


def sockets(runtime_dir: str) -> tuple[list[str], list[str]]:
    """The metrics sockets below ``runtime_dir`` that pass ``untrusted``, and a line for
    each one that does not (which is never asked)."""
    try:
        names = sorted(os.listdir(runtime_dir))[:MAX_SOCKETS]
    except OSError:
        return [], []
    uids = trusted_uids()
    found, refused = [], []
    for name in names:
        path = os.path.join(runtime_dir, name, SOCKET_NAME)
        if not os.path.lexists(path):
            continue
        why = untrusted(path, uids)
        if why:
            refused.append(f"ignored {path!a}: {why}")
        else:
            found.append(path)
    return found, refused


def scrape(path: str, uids: frozenset[int] | None = None) -> str:
    """The ``/metrics`` text served on the socket at ``path``.

    Raises:
        OSError: cannot connect, too slow, or the process answering runs as another user.
        ValueError: the answer is no HTTP 200.
    """
    uids = trusted_uids() if uids is None else uids
    deadline = time.monotonic() + TIMEOUT_S
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(TIMEOUT_S)
        conn.connect(path)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid not in uids:
            raise PermissionError(f"{path}: answered by uid {uid}, not by root or {SERVICE_USER}")
        conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        answer = b""
        while len(answer) <= MAX_ANSWER:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{path}: no whole answer within {TIMEOUT_S} s")
            conn.settimeout(left)
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if status[:12] not in (b"HTTP/1.0 200", b"HTTP/1.1 200"):
        raise ValueError(f"{path}: answered {status[:80]!r}")
    return body[:MAX_ANSWER].decode("utf-8", "replace")
