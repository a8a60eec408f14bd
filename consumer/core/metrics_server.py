"""Serving ``/metrics``, bounded, and never in the way of alerting.

Two places a process serves its metrics (``start``):

- a unix socket in the service's own runtime directory (``$RUNTIME_DIRECTORY``, which
  systemd makes for each unit: ``RuntimeDirectory=loginwatch/worker-%i``, owned by the
  service user, removed when the unit stops). It is what ``loginwatch status`` reads
  (``metrics_socket.py``): no other user can create a file there, so nobody can answer
  in the service's name;
- TCP at ``[metrics] listen`` (port + ``$LOGINWATCH_METRICS_PORT_OFFSET``), for
  Prometheus. Any local user could take that port first, so it is never trusted.

A place that cannot be bound is one warning, and the process goes on: a squatter on the
metrics port must not keep a worker from mailing. Each server has one accepting thread
and ``HANDLERS`` threads that serve one connection at a time; at most ``WAITING``
connections wait for them (more are closed at once), and a client has ``REQUEST_S`` to
send its request and ``REQUEST_S`` to take the answer. So a slowloris costs at most
those few threads for a few seconds each: no thread per connection, no lock that the
pipeline waits on.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import socket
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from schemas.config import MetricsConfig, parse_listen
from schemas.errors import ConfigError

log = logging.getLogger("loginwatch.metrics")

HANDLERS: Final = 2  # threads that serve connections, per server
WAITING: Final = 16  # accepted connections that may wait for a handler; more are closed
REQUEST_S: Final = 2.0  # for the request to arrive whole, and again for the answer to leave
MAX_REQUEST: Final = 8192  # bytes of request line and headers
SOCKET_NAME: Final = "metrics.sock"

LISTEN_ENV: Final = "LOGINWATCH_METRICS_LISTEN"
# Set by loginwatch-worker@N.service to N: instance N serves on [metrics] listen's
# port + N, so the digest (offset 0) and every worker on a machine share one config.
OFFSET_ENV: Final = "LOGINWATCH_METRICS_PORT_OFFSET"
RUNTIME_ENV: Final = "RUNTIME_DIRECTORY"  # systemd's, from RuntimeDirectory=


def _render() -> bytes:
    return generate_latest(REGISTRY)


class Server:
    """``/metrics`` on a bound, listening socket, with bounded threads and time per client."""

    def __init__(self, listener: socket.socket, render: Callable[[], bytes] = _render) -> None:
        self.listener = listener
        self._render = render
        self._waiting: queue.Queue[socket.socket] = queue.Queue(WAITING)
        self._closed = threading.Event()
        self.refused = 0  # connections closed unserved: every handler busy, the queue full
        threads = [threading.Thread(target=self._accept, name="metrics-accept", daemon=True)]
        threads += [
            threading.Thread(target=self._handle, name=f"metrics-{n}", daemon=True)
            for n in range(HANDLERS)
        ]
        for thread in threads:
            thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.05)  # EMFILE and the like: never a busy loop
                continue
            try:
                self._waiting.put_nowait(conn)
            except queue.Full:
                self.refused += 1
                conn.close()

    def _handle(self) -> None:
        while True:
            conn = self._waiting.get()
            with conn, contextlib.suppress(OSError):
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        request = _read_request(conn, time.monotonic() + REQUEST_S)
        if request is None:
            return
        method, _, rest = request.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b"GET /metrics\n"
        elif path not in ("/metrics", "/"):
            status, body = "404 Not Found", b"GET /metrics\n"
        else:
            status, body = "200 OK", self._render()
        head = (
            f"HTTP/1.0 {status}\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        conn.settimeout(REQUEST_S)  # the whole sendall, not each send (Python >= 3.5)
        conn.sendall(head.encode() + (b"" if method == "HEAD" else body))

    def close(self) -> None:
        """Stop accepting (the handler threads idle on; they are daemons)."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def _read_request(conn: socket.socket, deadline: float) -> str | None:
    """The request line, once the whole head arrived before ``deadline``; None: it did not,
    or it is longer than ``MAX_REQUEST``."""
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > MAX_REQUEST:
            return None
        conn.settimeout(left)
        chunk = conn.recv(1024)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode("latin-1").strip()


@dataclass
class Served:
    """Where this process serves its metrics: a TCP port, a unix socket, either or none."""

    port: int | None = None
    socket: str | None = None
    servers: tuple[Server, ...] = ()

    def close(self) -> None:
        for server in self.servers:
            server.close()


def serve_tcp(listen: str, setting: str) -> Server:
    """``/metrics`` on ``listen`` (``HOST:PORT``); ``setting`` names what chose it.

    Raises:
        ConfigError: a bad address, or the port cannot be bound (naming ``setting``).
    """
    host, port = parse_listen(listen, setting)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=WAITING)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = (
                "; another process holds it (a second loginwatch process with the same config:"
                f" give each its own port with {setting}, or ${OFFSET_ENV}=N, which"
                " loginwatch-worker@N.service sets: port + N)"
            )
        raise ConfigError(f"{setting}: cannot listen on {listen}: {exc.strerror}{hint}") from None
    return Server(listener)


def serve_unix(directory: str) -> Server:
    """``/metrics`` on ``directory/metrics.sock`` (mode 0600): ``directory`` must be this
    process's own (its owner, not writable by group or others), as systemd makes it.

    Raises:
        ConfigError: the directory is missing or not ours, or the socket cannot be bound.
    """
    where = f"${RUNTIME_ENV} {directory}"
    try:
        st = os.lstat(directory)
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ConfigError(f"{where}: not a directory of this user's that only it may write")
    path = os.path.join(directory, SOCKET_NAME)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # our own, from a process before this one (the directory is ours)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(WAITING)
    except OSError as exc:
        listener.close()
        raise ConfigError(f"{where}: cannot listen on {path}: {exc.strerror}") from None
    return Server(listener)


def start(config: MetricsConfig, environ: Mapping[str, str]) -> Served:
    """Serve metrics where the environment and ``[metrics]`` say; never raises.

    The unix socket in ``$RUNTIME_DIRECTORY``, when it is set (systemd's units set it);
    TCP at ``$LOGINWATCH_METRICS_LISTEN``, else at ``[metrics] listen`` shifted by
    ``$LOGINWATCH_METRICS_PORT_OFFSET``. What cannot be served is logged as a warning.
    """
    served = Served()
    servers: list[Server] = []
    runtime = environ.get(RUNTIME_ENV, "").split(":")[0]
    if runtime:
        try:
            servers.append(serve_unix(runtime))
            served.socket = os.path.join(runtime, SOCKET_NAME)
        except ConfigError as exc:
            log.warning("metrics: %s; no metrics for loginwatch status, alerting goes on", exc)
    try:
        tcp = _tcp(config, environ)
    except ConfigError as exc:
        log.warning("metrics: %s; no Prometheus metrics from this process, alerting goes on",
                    exc)  # fmt: skip
        tcp = None
    if tcp is not None:
        servers.append(tcp)
        served.port = int(tcp.listener.getsockname()[1])
    served.servers = tuple(servers)
    return served


def _tcp(config: MetricsConfig, environ: Mapping[str, str]) -> Server | None:
    """Raises: ConfigError: a bad address or offset, or the port cannot be bound."""
    if environ.get(LISTEN_ENV):
        return serve_tcp(environ[LISTEN_ENV], f"${LISTEN_ENV}")
    if not config.listen:
        return None
    offset = environ.get(OFFSET_ENV, "0")
    if not offset.isdigit():
        raise ConfigError(f"${OFFSET_ENV}: expected a number, got {offset!r}")
    host, port = parse_listen(config.listen)
    shifted = port + int(offset) if port else 0
    if shifted > 65535:
        raise ConfigError(f"${OFFSET_ENV}: {config.listen} + {offset} is past port 65535")
    where = f"[{host}]:{shifted}" if ":" in host else f"{host}:{shifted}"
    return serve_tcp(where, "$.metrics.listen ([metrics] listen)")
