"""Run a command with a /dev/log of our own, and read what it sends to syslog.

The hook's detached publisher has no stderr (it lets go of every descriptor),
so syslog is the only place its lines go. This machine runs no syslog daemon,
and the real /dev is never touched: the command runs in a private mount
namespace (``unshare -m``) whose /dev is a tmpfs holding the few devices a
program needs plus ``log``, bind-mounted from a datagram socket this object reads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.services import missing

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


class SyslogNamespace:
    """A datagram socket standing in for /dev/log, and a way to run commands against it."""

    def __init__(self, directory: Path) -> None:
        if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
            missing("root and unshare (a private /dev/log needs a mount namespace)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "log.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.received: list[str] = []

    def run(
        self, command: Sequence[str], env: Mapping[str, str], timeout: float = 30
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``command`` (no shell) with ``env``, its /dev/log being our socket."""
        real = self.dir / "realdev"
        binds = "\n".join(
            f"touch /dev/{name} && mount --bind {real}/{name} /dev/{name}" for name in DEVICES
        )
        script = f"""set -e
mkdir -p {real}
mount --bind /dev {real}
mount -t tmpfs -o mode=755 tmpfs /dev
{binds}
touch /dev/log && mount --bind {self.path} /dev/log
exec "$@"
"""
        return subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def wait_for(self, text: str, timeout: float = 20) -> str | None:
        """The first line received that contains ``text`` (None once ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.received:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                self.received.append(self.sock.recv(65536).decode("utf-8", "replace"))
            except TimeoutError:
                return None

    def close(self) -> None:
        self.sock.close()
