"""Helpers to run the real ``loginwatch-hook`` and read what reached the broker.

Shared by the producer, worker, deploy and benchmark tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pika

from producer import capture, ledger, settings
from producer.backlog import Backlog
from schemas import topology, wire
from schemas.event import LoginEvent

HOOK = str(Path(sys.executable).with_name("loginwatch-hook"))
NATIVE = "loginwatch-hook-native"  # the C front-end's name beside it (tests/support/native.py)

# A PAM environment as pam_exec gives it to the hook for an ed25519 key login.
ED25519_BLOB = "AAAAC3NzaC1lZDI1NTE5AAAAIF00DZXFJEA58XqkKWiZK9NNfyqDZGh55z0zNkZYuL7w"
# What `ssh-keygen -lf` prints for that key.
ED25519_FINGERPRINT = "SHA256:6oxXxr1ARRCTlbAWsg3qLveyRrKtp5Vza2XOif0+Y8M"
PAM_ENV: dict[str, str] = {
    "PAM_TYPE": "open_session",
    "PAM_SERVICE": "sshd",
    "PAM_USER": "alice",
    "PAM_RHOST": "192.0.2.10",
    "PAM_TTY": "ssh",
    "SSH_CONNECTION": "192.0.2.10 50022 198.51.100.5 22",
    "SSH_AUTH_INFO_0": f"publickey ssh-ed25519 {ED25519_BLOB}\n",
}


# ... and for a failed password from a stranger (the hook on the auth stack's failure branch).
FAILED_PASSWORD: dict[str, str] = {
    "PAM_TYPE": "auth",
    "PAM_SERVICE": "sshd",
    "PAM_USER": "root",
    "PAM_RHOST": "203.0.113.66",
}


def unreachable_url() -> str:
    """A broker URL where nothing listens (a port just closed): the broker is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


def write_config(
    directory: Path,
    amqp_url: str,
    *extra: str,
    host: str = "web-01",
    host_keys: tuple[str, ...] = (),
) -> Path:
    """A minimal hook config: broker, host name (and ``host_keys``: ``[host]`` lines) and a
    spool inside ``directory``."""
    path = directory / "loginwatch.toml"
    path.write_text(
        "\n".join(
            [
                "[broker]",
                f'url = "{amqp_url}"',
                "connect_timeout = 2.0",
                "publish_timeout = 8.0",
                "[host]",
                f'name = "{host}"',
                *host_keys,
                "[spool]",
                f'dir = "{directory / "spool"}"',
                *extra,
            ]
        )
        + "\n"
    )
    return path


@dataclass(frozen=True)
class HookRun:
    returncode: int
    seconds: float
    stderr: bytes


def run_hook(
    config: Path,
    env: Mapping[str, str | bytes] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 30,
    hook: str = HOOK,
) -> HookRun:
    """Run the hook as pam_exec would (PAM env only) and time its foreground."""
    if Path(hook).name == NATIVE:
        # The C front-end hands a login whose settings cache is stale to the Python
        # foreground, which refreshes it: warm it first, as any earlier login would have.
        warm_settings(config)
    # Under PAM the hook keeps its settings cache in /run/loginwatch (it ignores
    # the environment there); tests/conftest.py removes what the tests left.
    environ: dict[bytes, bytes] = {b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin"}
    for key, value in (PAM_ENV if env is None else env).items():
        environ[key.encode()] = value if isinstance(value, bytes) else value.encode()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [hook, "--config", str(config), *args],
        env=environ,  # bytes keys and values: valid on POSIX
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Popen.wait() times short runs precisely; subprocess.run rounds them up.
    _, stderr = proc.communicate(timeout=timeout)
    return HookRun(proc.returncode, time.perf_counter() - start, stderr)


def warm_settings(config: Path, runtime_dir: Path | None = None) -> None:
    """Write the hook's settings cache for ``config``, as a login would: in /run/loginwatch,
    or in ``runtime_dir`` (what a namespace's hook sees as /run/loginwatch: an sshd's)."""
    saved = os.environ.get(settings.RUNTIME_ENV)
    if runtime_dir is not None:
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ[settings.RUNTIME_ENV] = str(runtime_dir)
    try:
        with contextlib.suppress(Exception):  # a broken config: the hook's fallback says why
            settings.load(str(config))
    finally:
        if saved is None:
            os.environ.pop(settings.RUNTIME_ENV, None)
        else:
            os.environ[settings.RUNTIME_ENV] = saved


def wait_for(predicate: Callable[[], bool], timeout: float = 15, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; returns the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def spooled(config_dir: Path) -> list[bytes]:
    """The records waiting in the spool of the host config in ``config_dir``."""
    return spool_records(config_dir / "spool")


def spool_records(spool_dir: Path) -> list[bytes]:
    """The records waiting in ``spool_dir``, in slots and files, in publishing order
    (one a publisher is sending at this moment may be missing)."""
    try:
        backlog = Backlog(str(spool_dir))
    except FileNotFoundError:
        return []
    records = []
    with backlog:
        for entry in backlog.pending():
            data = backlog.take(entry)
            if data is not None:
                backlog.release(entry)
                records.append(data)
    return records


def spooled_users(config_dir: Path) -> list[bytes]:
    """PAM_USER of every record waiting in the spool, in publishing order."""
    return [capture.parse(data).get("PAM_USER", b"") for data in spooled(config_dir)]


def dropped(config_dir: Path) -> ledger.Ledger:
    """What the spool of the host config in ``config_dir`` counts as dropped."""
    return ledger.read(str(config_dir / "spool"))


class TapQueue:
    """An exclusive queue bound to the events exchange: what a consumer would see. ``take``
    returns the events; heartbeats and logouts (every flush sends a heartbeat) are kept
    aside in ``others``, in order, for ``take_others``."""

    def __init__(self, amqp_url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(
            topology.EXCHANGE, topology.EXCHANGE_TYPE, durable=True, passive=False
        )
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, topology.EXCHANGE, topology.BINDING_KEY)
        self.others: list[tuple[pika.BasicProperties, wire.Message]] = []

    def take(
        self, count: int, timeout: float = 15
    ) -> list[tuple[pika.BasicProperties, LoginEvent]]:
        """Wait for ``count`` messages (or the timeout); returns all that came."""
        got: list[tuple[pika.BasicProperties, LoginEvent]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.05)
                continue
            found = wire.decode(body)
            if isinstance(found, LoginEvent):
                got.append((properties, found))
            else:
                self.others.append((properties, found))
        return got

    def take_others(
        self, count: int, timeout: float = 15
    ) -> list[tuple[pika.BasicProperties, wire.Message]]:
        """Wait for ``count`` heartbeats or logouts (events that come meanwhile are
        dropped); returns all that came, and forgets them."""
        deadline = time.monotonic() + timeout
        while len(self.others) < count and time.monotonic() < deadline:
            self.take(1, timeout=min(0.2, max(deadline - time.monotonic(), 0)))
        got, self.others = self.others, []
        return got

    def close(self) -> None:
        self.connection.close()


class SilentListener:
    """A TCP listener that accepts connections and never says a word (a broker that hangs)."""

    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return int(self.sock.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()
