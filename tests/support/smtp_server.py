"""A real SMTP server (aiosmtpd) in-process for tests, the demo and benchmarks.

    with SmtpServer() as smtp:                      # 127.0.0.1, a free port
        smtp.fail_next("451 4.3.0 try again")       # the next DATA answers 451
        smtp.fail_next(DROP)                        # the one after: connection dropped
        ... deliver to smtp.port ...
        smtp.wait_for(1)                            # the received mails, bounded wait
        smtp.messages[0].message["Subject"]

Faults are consumed one per DATA command, in order: an SMTP reply line (``"421 …"``,
``"550 …"``), ``DROP`` (close the connection without storing the mail, as if it broke
mid-DATA) or ``DROP_AFTER_ACCEPT`` (store the mail, then close before replying: the
at-least-once edge). ``reject_rcpt`` refuses recipients by address. With ``maildir`` every
accepted mail is also written there. ``tls`` (``"starttls"`` / ``"ssl"``) and ``users`` (AUTH
PLAIN/LOGIN, only over TLS) turn on encryption and authentication with a throwaway
self-signed certificate whose file is ``smtp.cert_file``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import mailbox
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

DROP: Final = "<drop>"
DROP_AFTER_ACCEPT: Final = "<drop-after-accept>"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.owner.lock:
            self.owner.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.owner.reject_rcpt:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        owner = self.owner
        with owner.lock:
            fault = owner.faults.popleft() if owner.faults else None
            owner.attempts += 1
        if fault == DROP:
            server.transport.close()
            return "421 dropped"  # never reaches the client
        if fault is not None and fault != DROP_AFTER_ACCEPT:
            return fault
        owner.store(Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        if fault == DROP_AFTER_ACCEPT:
            server.transport.close()
        return "250 2.0.0 queued"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 (or ``host``) in a thread; a context manager."""

    def __init__(
        self,
        *,
        maildir: Path | None = None,
        tls: Literal["starttls", "ssl"] | None = None,
        users: dict[str, str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.messages: list[Received] = []
        self.arrived: list[float] = []  # when each of messages was stored (epoch s)
        self.faults: deque[str] = deque()
        self.reject_rcpt: set[str] = set()
        self.attempts = 0
        self.ehlos = 0  # one per connection (two with STARTTLS): shows connection reuse
        self.lock = threading.Lock()
        self.maildir = mailbox.Maildir(maildir, create=True) if maildir else None
        self.users = users or {}
        self.port = port or free_port()
        self.cert_file: str | None = None
        self._also = "" if host == "127.0.0.1" else f",IP:{host}"  # in the certificate too
        self._tmp = tempfile.TemporaryDirectory(prefix="lw-smtp-")
        kwargs: dict[str, Any] = {}
        context = self._tls_context() if tls or users else None
        if tls == "ssl":
            kwargs["ssl_context"] = context
        elif context is not None:
            kwargs["tls_context"] = context
        if users:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = True
        self.controller = Controller(
            _Handler(self),
            hostname=host,  # loopback, or a test network's own address (tests/support/netns.py)
            port=self.port,
            enable_SMTPUTF8=True,
            # A fixed name: aiosmtpd would otherwise look up its FQDN for every connection.
            server_hostname="smtp.loginwatch.test",
            **kwargs,
        )

    def _tls_context(self) -> ssl.SSLContext:
        cert = Path(self._tmp.name) / "cert.pem"
        key = Path(self._tmp.name) / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(cert),
             "-addext", f"subjectAltName=DNS:localhost,IP:127.0.0.1{self._also}"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self.cert_file = str(cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.users.get(
            data.login.decode()
        ) == data.password.decode("utf-8", "replace")
        return AuthResult(success=ok, handled=False)

    def store(self, received: Received) -> None:
        with self.lock:
            self.messages.append(received)
            self.arrived.append(time.time())
            if self.maildir is not None:
                self.maildir.add(received.data)

    def fail_next(self, *replies: str) -> None:
        with self.lock:
            self.faults.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The received mails once there are at least ``count`` (or whatever came in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.01)
        with self.lock:
            return list(self.messages)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self._tmp.cleanup()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def main() -> None:
    """``python -m tests.support.smtp_server PORT MAILDIR``: serve until interrupted (demo use)."""
    import sys

    port, maildir = int(sys.argv[1]), Path(sys.argv[2])
    with SmtpServer(port=port, maildir=maildir):
        print(f"smtp: listening on 127.0.0.1:{port}, mails in {maildir}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
