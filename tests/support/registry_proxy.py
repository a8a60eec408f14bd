"""An HTTP proxy to the package registries, for a machine of ours with no route out.

The newcomer's machine (tests/newcomer) lives in a network namespace whose only link is to
this machine; apt and pip reach Debian's mirror and PyPI through this proxy (``http_proxy``,
``https_proxy``) and nothing else: a CONNECT (https) or a plain request (apt's http) to any
other host is refused with 403. Threads and sockets, bounded by the caller's run: stop() ends
it; each tunnel ends when either side closes.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from urllib.parse import urlsplit

REGISTRIES = frozenset({"deb.debian.org", "pypi.org", "files.pythonhosted.org"})
IDLE_S = 300  # a tunnel that carries nothing this long is closed


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(IDLE_S)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk or len(head) > 65536:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, target, *_ = [*line.split(" "), "", ""]
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            rest = b""
        else:
            parts = urlsplit(target)
            host, port = parts.hostname or "", str(parts.port or 80)
            origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            rest = head.replace(target.encode("latin-1"), origin.encode("latin-1"), 1)
        if host not in self.server.allowed or not port.isdigit():
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=30)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            upstream.settimeout(IDLE_S)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(rest)
            self.server.count(host)
            other = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            other.start()
            _pump(client, upstream)
            other.join(IDLE_S)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], allowed: frozenset[str]) -> None:
        super().__init__(address, _Handler)
        self.allowed = allowed
        self.tunnels: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, host: str) -> None:
        with self._lock:
            self.tunnels[host] = self.tunnels.get(host, 0) + 1


class RegistryProxy:
    """The proxy, listening on ``listen``:0 (``url`` says where) until ``stop()``."""

    def __init__(self, listen: str, allowed: frozenset[str] = REGISTRIES) -> None:
        self._server = _Server((listen, 0), allowed)
        self.url = f"http://{listen}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def tunnels(self) -> dict[str, int]:
        """How many connections went to each registry."""
        return dict(self._server.tunnels)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
