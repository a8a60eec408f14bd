"""SMTP delivery against a real aiosmtpd server: reuse, TLS, AUTH, and every fault class."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import threading
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from consumer.channels.mail import SmtpSender
from consumer.channels.mail_headers import compose
from schemas import topology
from schemas.config import SmtpConfig
from schemas.errors import ConfigError, PermanentSendError, TransientSendError
from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.smtp_server import DROP, DROP_AFTER_ACCEPT, SmtpServer, free_port
from tests.support.worker_helpers import depth, loginwatch, publish, running_worker, write_config

pytestmark = pytest.mark.integration


def mail(n: int = 1, to: str = "ops@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "loginwatch@example.org"
    msg["To"] = to
    msg["Subject"] = f"test {n}"
    msg["Message-ID"] = f"<test-{n}@example.org>"
    msg.set_content(f"body {n}\n")
    return msg


def sender(port: int, **smtp: Any) -> SmtpSender:
    config = SmtpConfig(
        host="127.0.0.1", port=port, from_="loginwatch@example.org", timeout=5, **smtp
    )
    return SmtpSender(config, attempts=3, wait=0.01, max_wait=0.05)


def test_mails_share_one_connection(smtp: SmtpServer) -> None:
    with sender(smtp.port) as out:
        for n in range(3):
            out.send(mail(n))
    got = smtp.wait_for(3)
    assert [r.message["Subject"] for r in got] == ["test 0", "test 1", "test 2"]
    assert got[0].rcpt_tos == ("ops@example.org",)
    assert got[0].mail_from == "loginwatch@example.org"
    assert smtp.ehlos == 1


@pytest.mark.parametrize(
    "faults", [("421 4.3.2 shutting down",), ("451 4.3.0 later", "421 4.7.0 busy"), (DROP,)]
)
def test_transient_faults_then_success_deliver_once(
    smtp: SmtpServer, faults: tuple[str, ...]
) -> None:
    smtp.fail_next(*faults)
    with sender(smtp.port) as out:
        out.send(mail())
    assert len(smtp.wait_for(1)) == 1
    assert smtp.attempts == len(faults) + 1


def test_drop_after_accept_is_the_at_least_once_edge(smtp: SmtpServer) -> None:
    smtp.fail_next(DROP_AFTER_ACCEPT)
    with sender(smtp.port) as out:
        out.send(mail())
    got = smtp.wait_for(2)
    # The server stored the mail but its 250 never arrived: a second copy, same Message-ID.
    assert [r.message["Message-ID"] for r in got] == ["<test-1@example.org>"] * 2


def test_550_is_permanent_at_once(smtp: SmtpServer) -> None:
    smtp.fail_next("550 5.7.1 message refused")
    with sender(smtp.port) as out, pytest.raises(PermanentSendError) as caught:
        out.send(mail())
    assert str(caught.value) == f"SMTP 127.0.0.1:{smtp.port}: 550 5.7.1 message refused"
    assert smtp.attempts == 1


def test_refused_recipient_is_permanent(smtp: SmtpServer) -> None:
    smtp.reject_rcpt.add("gone@example.org")
    with (
        sender(smtp.port) as out,
        pytest.raises(PermanentSendError, match=r"gone@example.org \(550"),
    ):
        out.send(mail(to="gone@example.org"))


def test_persistent_4xx_is_transient_after_the_retries(smtp: SmtpServer) -> None:
    smtp.fail_next(*["451 4.3.0 later"] * 3)
    with sender(smtp.port) as out, pytest.raises(TransientSendError, match=r"451 4\.3\.0 later"):
        out.send(mail())
    assert smtp.attempts == 3


def test_server_down_is_transient_after_the_retries() -> None:
    port = free_port()
    with (
        sender(port) as out,
        pytest.raises(TransientSendError, match=f"127.0.0.1:{port}: Connection refused"),
    ):
        out.send(mail())


def test_reconnects_when_the_server_closed_the_idle_connection() -> None:
    port = free_port()
    with sender(port) as out:
        with SmtpServer(port=port) as first:
            out.send(mail(1))
            assert len(first.wait_for(1)) == 1
        with SmtpServer(port=port) as second:
            out.send(mail(2))
            assert [r.message["Subject"] for r in second.wait_for(1)] == ["test 2"]


def secret(tmp_path: Path, text: str) -> str:
    path = tmp_path / "smtp.password"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def test_starttls_and_auth(tmp_path: Path) -> None:
    with SmtpServer(tls="starttls", users={"lw": "s3cret"}) as smtp:
        tls = {"starttls": True, "ca_file": smtp.cert_file, "username": "lw"}
        with sender(smtp.port, **tls, password_file=secret(tmp_path, "s3cret")) as out:
            out.send(mail())
        assert len(smtp.wait_for(1)) == 1
        with (
            sender(smtp.port, **tls, password_file=secret(tmp_path, "wrong")) as out,
            pytest.raises(PermanentSendError, match="535"),
        ):
            out.send(mail())


def test_implicit_tls() -> None:
    with SmtpServer(tls="ssl") as tls_smtp:
        with sender(tls_smtp.port, ssl=True, ca_file=tls_smtp.cert_file) as out:
            out.send(mail())
        assert len(tls_smtp.wait_for(1)) == 1
        # Without our CA the certificate is not trusted: the alert waits rather than dies.
        with (
            sender(tls_smtp.port, ssl=True) as out,
            pytest.raises(TransientSendError, match="certificate"),
        ):
            out.send(mail())


def test_no_alert_travels_unencrypted_to_a_remote_server() -> None:
    # Not only with a username: a relay in the middle reads every alert, or answers 250
    # and drops it. Refused when the config is made, before any sender exists.
    for username in ("lw", None):
        with pytest.raises(ValueError, match=r"host is SMTP without TLS to mail\.example\.org"):
            SmtpConfig(host="mail.example.org", username=username)
    assert SmtpConfig(host="mail.example.org", username="lw", starttls=True).starttls
    assert SmtpConfig(host="mail.example.org", allow_plaintext=True).allow_plaintext


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts TCP, never says 220
        port = silent.getsockname()[1]
        config = SmtpConfig(host="127.0.0.1", port=port, timeout=0.3)
        out = SmtpSender(config, attempts=2, wait=0.01)
        with pytest.raises(
            TransientSendError, match=f"127.0.0.1:{port}: Connection unexpectedly closed: timed out"
        ):
            out.send(mail())


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    config = SmtpConfig(starttls=True, ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"^\$\.smtp\.ca_file: cannot load "):
        SmtpSender(config)


class StrippingProxy:
    """A man in the middle on loopback: forwards to ``port``, tampers with STARTTLS.

    ``strip``: EHLO replies lose STARTTLS and offer AUTH in its place (to harvest the
    password); ``refuse``: STARTTLS stays offered, but the command gets ``502``. Everything
    the client says is kept in ``said``.
    """

    def __init__(self, port: int, mode: str) -> None:
        self.port, self.mode, self.said = port, mode, b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> StrippingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self.listener.close()
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()
                threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client, upstream:
            while data := upstream.recv(65536):
                if self.mode == "strip":
                    data = data.replace(b"250-STARTTLS\r\n", b"250-AUTH PLAIN LOGIN\r\n")
                client.sendall(data)

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError), client, upstream:
            while data := client.recv(65536):
                self.said += data
                if self.mode == "refuse" and data.upper().startswith(b"STARTTLS"):
                    client.sendall(b"502 5.5.1 not today\r\n")
                    continue
                upstream.sendall(data)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("strip", "did not offer STARTTLS"),
        ("refuse", "STARTTLS refused: 502 5.5.1 not today; nothing sent"),
    ],
)
def test_starttls_stripped_on_the_way_is_transient_and_keeps_the_password(
    tmp_path: Path, mode: str, error: str
) -> None:
    with SmtpServer(tls="starttls", users={"lw": "s3cret"}) as smtp:
        tls = {"starttls": True, "ca_file": smtp.cert_file, "username": "lw"}
        password = secret(tmp_path, "s3cret")
        with StrippingProxy(smtp.port, mode) as proxy:
            with sender(proxy.address, **tls, password_file=password) as out:
                with pytest.raises(TransientSendError, match=error):
                    out.send(mail())  # parked for the retry queues, not dead
            said = proxy.said.lower()  # smtplib says "ehlo", "auth", "mail from"
            assert b"ehlo" in said
            for word in (b"s3cret", base64.b64encode(b"\0lw\0s3cret").lower(), b"auth", b"mail"):
                assert word not in said
        assert smtp.messages == []
        # Once the network stops tampering, the retried alert goes out over TLS.
        with sender(smtp.port, **tls, password_file=password) as out:
            out.send(mail())
        assert len(smtp.wait_for(1)) == 1


def test_a_server_without_starttls_is_transient_and_hears_no_password(tmp_path: Path) -> None:
    with SmtpServer() as plain:
        out = sender(plain.port, starttls=True, username="lw",
                     password_file=secret(tmp_path, "s3cret"))  # fmt: skip
        with out, pytest.raises(TransientSendError, match="did not offer STARTTLS"):
            out.send(mail())
        assert plain.messages == [] and plain.ehlos == 3  # three tries, each EHLO then QUIT


def test_a_worker_parks_alerts_while_starttls_is_missing_then_sends_them(
    vh: Vhost, tmp_path: Path
) -> None:
    """The real worker: STARTTLS missing on the way is the retry queues' business, not dead."""
    tls_server = SmtpServer(tls="starttls")  # built, not started: its certificate exists
    assert tls_server.cert_file is not None
    ca = tmp_path / "ca.pem"
    shutil.copy(tls_server.cert_file, ca)
    config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=tls_server.port)
    text = config.read_text().replace("[smtp]\n", f'[smtp]\nstarttls = true\nca_file = "{ca}"\n')
    config.write_text(text)
    assert loginwatch("setup", "--config", str(config)).returncode == 0
    login = event(tty="pts/starttls")
    with running_worker(config, tmp_path / "worker.log") as worker:
        with SmtpServer(port=tls_server.port) as plain:  # offers no STARTTLS
            publish(vh, encode(login))
            worker.wait_for(rf"{login.id_hex} parked in loginwatch\.retry\.1s")
            assert plain.messages == []
        assert depth(vh, topology.DEAD_QUEUE) == 0
        with tls_server:
            [mail] = tls_server.wait_for(1, timeout=30)
            worker.wait_for(rf"{login.id_hex} immediate ops@test.example: sent")
    assert login.id_hex in mail.message["Message-ID"]
    assert "did not offer STARTTLS" in (tmp_path / "worker.log").read_text()


def test_an_international_address_goes_out_with_smtputf8(smtp: SmtpServer) -> None:
    """The checked bytes are sent as smtplib.send_message would: UTF-8 headers, SMTPUTF8."""
    sender_address = Address("loginwatch", addr_spec="loginwatch@example.org")
    msg = compose(
        [("From", sender_address), ("To", Address(addr_spec="ops@exämple.org")),
         ("Subject", "Grüße =?utf-8?q?=0D=0AX:_1?=")],
        "text\n",
        "<p>html</p>\n",
    )  # fmt: skip
    with sender(smtp.port) as out:
        out.send(msg)
    (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ("ops@exämple.org",)
    head = received.data.partition(b"\r\n\r\n")[0].decode("utf-8")
    assert "\r\nSubject: Grüße =？utf-8?q?=0D=0AX:_1?=\r\n" in head
    assert list(received.message.keys()) == [
        "From",
        "To",
        "Subject",
        "MIME-Version",
        "Content-Type",
    ]
