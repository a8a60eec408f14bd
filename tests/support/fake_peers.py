"""Men in the middle for the transport tests: a PostgreSQL server and an SMTP relay that
refuse TLS and ask for the password in clear text, and record every byte they received.

    with FakePostgres(net.address) as pg:     # answers an SSLRequest with "N" (no TLS),
        ...                                   # then asks for a cleartext password
        pg.received                           # b"...": what the client sent, all of it
        pg.password                           # the password it sent, or None

    with FakeSmtpRelay(net.address) as relay: # ESMTP without STARTTLS; AUTH PLAIN/LOGIN
        relay.received                        # every line and DATA the client sent

Each listens on one address (a test network's, so the client's rule for a peer off
loopback applies), serves connections in threads of its own, and stops when the block
ends. They are what a man in the middle would run: if a client ever sent its password to
one, ``password`` / ``received`` show it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Final, Self

SSL_REQUEST: Final = 80877103  # PostgreSQL's SSLRequest code
GSS_REQUEST: Final = 80877104


class _Server:
    """A TCP listener on ``address`` (any free port) whose connections ``serve`` handles."""

    def __init__(self, address: str) -> None:
        self._listener = socket.create_server((address, 0))
        self.address = address
        self.port: int = self._listener.getsockname()[1]
        self.received = b""
        self.connections = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(10)
            self.serve(conn)

    def recv(self, conn: socket.socket, size: int) -> bytes:
        """Exactly ``size`` bytes (fewer: the client hung up), recorded."""
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        with self._lock:
            self.received += data
        return data

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError


class FakePostgres(_Server):
    """Refuses TLS ("N"), then asks for the password in clear text (AuthenticationCleartext)."""

    password: bytes | None = None

    def serve(self, conn: socket.socket) -> None:
        while True:
            head = self.recv(conn, 8)
            if len(head) < 8:
                return
            length, code = struct.unpack("!II", head)
            if code in (SSL_REQUEST, GSS_REQUEST):
                conn.sendall(b"N")  # "no TLS here": a client that insists must hang up now
                continue
            self.recv(conn, length - 8)  # the StartupMessage: user, database
            conn.sendall(b"R" + struct.pack("!II", 8, 3))  # cleartext password, please
            kind = self.recv(conn, 1)
            if kind != b"p":
                return
            (size,) = struct.unpack("!I", self.recv(conn, 4))
            self.password = self.recv(conn, size - 4).rstrip(b"\0")
            conn.sendall(b"E" + struct.pack("!I", 5) + b"\0")  # an error: enough said
            return


class FakeSmtpRelay(_Server):
    """ESMTP that never offers STARTTLS, takes AUTH PLAIN/LOGIN and any mail (250)."""

    def serve(self, conn: socket.socket) -> None:
        conn.sendall(b"220 relay.example ESMTP\r\n")
        reader = conn.makefile("rb")
        while line := reader.readline(4096):
            with self._lock:
                self.received += line
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-relay.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            elif verb == b"AUTH":
                conn.sendall(b"235 2.7.0 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go on\r\n")
                while (data := reader.readline(65536)) not in (b".\r\n", b""):
                    with self._lock:
                        self.received += data
                conn.sendall(b"250 2.0.0 queued (and dropped)\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")
