"""The mail channel: hand a rendered mail to the SMTP server, reusing one connection.

``SmtpSender`` is the ``Channel`` (``channels/base.py``) for every address: ``deliver`` sends
the mail the templates rendered into the notice (``Notice.mail``).

Failures are classified where they happen (``classify``): connection errors, timeouts,
disconnects and 4xx replies are ``TransientSendError``; 5xx replies, refused recipients and
unusable settings are ``PermanentSendError``. Tenacity retries only transient failures, a few
short tries, in ``send``; a longer outage is the caller's to park (retry queues).

Before a byte goes out, ``headers.wire`` serializes the mail and checks its header block
(exactly the mail's own headers, no CR/LF in a value): those checked bytes are what is sent.

A configured STARTTLS that the server does not offer (or refuses) is transient: whoever strips
it on the way must not send every alert to the dead queue. Nothing else is said on that
connection, so the password never travels in the clear; the alerts wait in the retry queues.

At least once: when the connection breaks after the server stored a mail but before its
``250`` reached us, the retry sends that mail again. Both copies carry the same Message-ID.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Protocol

import tenacity

from consumer.channels.mail_headers import international, wire
from consumer.core import metrics
from consumer.core.notice import Notice
from schemas.config import SmtpConfig
from schemas.errors import ConfigError, PermanentSendError, SendError, TransientSendError
from schemas.files import read_secret

log = logging.getLogger(__name__)


class Sender(Protocol):
    """What sends a mail: ``SmtpSender``, or a fake in tests."""

    def send(self, msg: EmailMessage) -> None: ...

    def close(self) -> None: ...


class SmtpSender:
    """Sends mails over one reused SMTP connection (not thread-safe: one per worker thread).

    ``attempts`` tries per mail, waiting ``wait``, 2×``wait``… (at most ``max_wait``) between.

    A relay off loopback without TLS never gets this far: ``[smtp]`` refuses it when the
    config is decoded (``schemas.transport.smtp_refusal``), for ``check-config`` as for the
    worker, unless ``allow_plaintext`` says so.

    Raises (from the constructor):
        ConfigError: the password file is missing or readable by others, or the ``ca_file``
            cannot be loaded.
    """

    def __init__(
        self, config: SmtpConfig, *, attempts: int = 3, wait: float = 0.5, max_wait: float = 4.0
    ) -> None:
        self.config = config
        self.password = (
            read_secret(config.password_file, "$.smtp.password_file")
            if config.password_file
            else None
        )
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientSendError),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=wait, max=max_wait),
            before_sleep=_log_retry,
            reraise=True,
        )
        self._conn: smtplib.SMTP | None = None
        # Built once: loading the CA store costs ~20 ms, more than a whole mail sent over a
        # reused connection.
        self._context = tls_context(config)
        self.sent = 0

    def send(self, msg: EmailMessage) -> None:
        """Send one mail to the addresses in its To header.

        Raises:
            TransientSendError: still failing after the short retries (park and retry later).
            PermanentSendError: 5xx, refused recipients, unusable settings (dead queue).
        """
        self._retrying(self._send_once, msg)
        self.sent += 1

    def deliver(self, notice: Notice) -> None:
        """The ``Channel`` protocol: send the notice's mail (to the address in its To).

        Raises:
            TransientSendError, PermanentSendError: as ``send``; PermanentSendError also
                for a notice that carries no mail (its target is no address).
        """
        if notice.mail is None:
            raise PermanentSendError(f"{notice.target}: no mail was rendered for this target")
        self.send(notice.mail)

    def _send_once(self, msg: EmailMessage) -> None:
        reused = self._conn is not None
        try:
            self._transmit(msg)
            return
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            if not reused:
                raise _disconnected(exc, self._where()) from exc
        # An idle connection the server had timed out: one immediate fresh try, not a retry.
        log.debug("reused SMTP connection was closed; reconnecting")
        try:
            self._transmit(msg)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            raise _disconnected(exc, self._where()) from exc

    def _transmit(self, msg: EmailMessage) -> None:
        recipients = [addr for _, addr in getaddresses(msg.get_all("To", []))]
        data = wire(msg)  # PermanentSendError: the header block is not exactly ours
        options = ("SMTPUTF8", "BODY=8BITMIME") if international(msg) else ()
        try:
            conn = self._connection()
            refused = conn.sendmail(self.config.from_, recipients, data, mail_options=options)
        except smtplib.SMTPServerDisconnected:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise classify(exc, self._where()) from exc
        if refused:
            raise PermanentSendError(f"{self._where()}: refused {_refusals(refused)}")

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> smtplib.SMTP:
        cfg = self.config
        # getfqdn() in smtplib would do a DNS lookup per connection; the host name is enough.
        local = socket.gethostname()
        context = self._context
        conn: smtplib.SMTP
        if cfg.ssl:
            conn = smtplib.SMTP_SSL(
                cfg.host, cfg.port, local_hostname=local, timeout=cfg.timeout, context=context
            )
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, local_hostname=local, timeout=cfg.timeout)
        try:
            conn.ehlo()
            if cfg.starttls:
                self._starttls(conn)
            if cfg.username:
                conn.login(cfg.username, self.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def _starttls(self, conn: smtplib.SMTP) -> None:
        """Upgrade to TLS, or give up on this connection before AUTH or MAIL is said.

        Raises:
            TransientSendError: the server did not offer STARTTLS, or refused it.
        """
        if not conn.has_extn("starttls"):
            raise TransientSendError(
                f"{self._where()}: the server did not offer STARTTLS (smtp.starttls is set;"
                " stripped on the way?): nothing sent, trying again later"
            )
        try:
            conn.starttls(context=self._context)
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error
            text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
            raise TransientSendError(
                f"{self._where()}: STARTTLS refused: {exc.smtp_code} {text}; nothing sent,"
                " trying again later"
            ) from exc
        conn.ehlo()

    def _where(self) -> str:
        return f"SMTP {self.config.host}:{self.config.port}"

    def close(self) -> None:
        """Say QUIT when the connection is still up; forget it either way."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    """The client TLS context for ``[smtp]``, or None without TLS.

    Raises:
        ConfigError: ``ca_file`` cannot be loaded.
    """
    if not (config.ssl or config.starttls):
        return None
    try:
        return ssl.create_default_context(cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"$.smtp.ca_file: cannot load {config.ca_file}: {exc}") from None


def classify(exc: BaseException, where: str) -> SendError:
    """Transient or permanent, with one line saying what happened.

    4xx replies, disconnects, timeouts and network errors are worth retrying; 5xx replies,
    refused recipients, a missing AUTH and rejected credentials are not. (A missing or
    refused STARTTLS is transient too, in ``SmtpSender._starttls``.)
    """
    if isinstance(exc, smtplib.SMTPException):
        return _smtp_error(exc, where)
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A certificate problem is a setting to fix, but the alerts must wait for it, not die.
        return TransientSendError(f"{where}: TLS certificate not trusted: {exc.verify_message}")
    if isinstance(exc, TimeoutError):
        return TransientSendError(f"{where}: timed out")
    if isinstance(exc, OSError):
        return TransientSendError(f"{where}: {exc.strerror or exc}")
    return TransientSendError(f"{where}: {exc}")


def _smtp_error(exc: smtplib.SMTPException, where: str) -> SendError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        kind = TransientSendError if all(400 <= c < 500 for c in codes) else PermanentSendError
        return kind(f"{where}: refused {_refusals(exc.recipients)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        kind = TransientSendError if 400 <= exc.smtp_code < 500 else PermanentSendError
        return kind(f"{where}: {exc.smtp_code} {text}".rstrip())
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentSendError(f"{where}: {exc} (check smtp.username)")
    return TransientSendError(f"{where}: {exc}")


def _disconnected(exc: smtplib.SMTPServerDisconnected, where: str) -> TransientSendError:
    # smtplib reports a read timeout as a disconnect: "Connection unexpectedly closed: timed out".
    return TransientSendError(f"{where}: {exc or 'server closed the connection'}")


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{addr} ({code} {reply.decode('utf-8', 'replace')})"
        for addr, (code, reply) in refused.items()
    )


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning("delivery attempt %d failed, retrying: %s", state.attempt_number, error)
    metrics.mail_retried()
