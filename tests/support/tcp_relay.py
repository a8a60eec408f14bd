"""A TCP relay from an address namespaces can reach to a service on this host's loopback.

    with TcpRelay(net.address, ("127.0.0.1", 5672)) as relay:  # net.address:relay.port → it
        url = vhost.url().replace("127.0.0.1:5672", f"{net.address}:{relay.port}")

The shared broker listens on 127.0.0.1 only, and a network namespace of ours
(tests/support/netns.py) reaches nothing but the bridge's address: a host side inside one
publishes to the real broker through this relay, which the broker sees as a loopback
client (``guest`` stays loopback-only). Every socket is closed on exit.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    """Accepts on ``address:0`` and pipes each connection to ``target`` (host, port)."""

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((address, 0))
        self.server.settimeout(0.2)
        self.port = int(self.server.getsockname()[1])
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            conn.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [conn, upstream]
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either ends; then end both directions."""
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for sock in (src, dst):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
