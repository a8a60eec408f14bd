"""One HTTP client per receiver, and every HTTP failure classified where it happens.

``Poster`` wraps one ``httpx.Client``: connections are reused (keep-alive), connect and read
time out (``connect_timeout``, ``timeout``), a redirect is never followed, the environment's
proxies and ``.netrc`` are never read, and TLS is always verified, against the receiver's
``ca_file`` when set, else the system's trust store.

Transient (``TransientSendError``; tried again here a few times, then parked by the
caller): connect errors, timeouts, a dropped connection, 429 and every 5xx. A 429 or 503
that says how long to wait (``Retry-After``, or the channel's own field such as Telegram's
``parameters.retry_after``) is ``RetryLater``: waited for here up to ``RETRY_AFTER_CAP``
seconds, beyond that it is parked at once. Permanent (``PermanentSendError``: the dead
queue): every 3xx (the URL moved; never followed), 410 and the other 4xx.

Reasons are built from the receiver's name, the status and the failure's kind, never from
the URL or a response body, and every secret of the receiver is scrubbed from them anyway.
httpx logs each request's full URL at INFO (a Slack URL, a Telegram token): its loggers are
turned down to CRITICAL when this module is imported.

The unknowable window: a timeout or a dropped connection after the request went out may
follow a delivery the receiver did accept; the retry then posts it again (docs/channels.md
says per channel who folds such a resend).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import quote

import httpx
import msgspec
import tenacity

from consumer.core import metrics
from consumer.core.notice import Notice
from schemas.errors import ConfigError, PermanentSendError, RetryLater, SendError
from schemas.errors import TransientSendError as Transient
from schemas.receivers import Resolved

for _noisy in ("httpx", "httpcore", "hpack", "h11"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)

log = logging.getLogger(__name__)

USER_AGENT: Final = "loginwatch/0.1 (+https://github.com/loginwatch)"
RETRY_AFTER_CAP: Final = 10.0  # seconds a notice waits in-process for a receiver's Retry-After
RETRY_AFTER_MAX: Final = 86400.0  # a longer Retry-After is read as this (it is parked anyway)
BODY_LIMIT: Final = 64 * 1024  # bytes of an answer we read: enough for any error JSON


@dataclass(frozen=True)
class Answer:
    """A receiver's answer: status, headers, and at most ``BODY_LIMIT`` bytes of body."""

    status: int
    headers: httpx.Headers
    body: bytes


# How long a 429 asks us to wait, from the channel's own field in the body (None: no such).
RetryField = Callable[[Answer], float | None]


def _no_field(_answer: Answer) -> float | None:
    return None


class Poster:
    """POSTs to one receiver over one reused client (not thread-safe: one per worker thread).

    ``attempts`` tries per notice, waiting ``wait``, 2×``wait``… (at most ``max_wait``), or
    the receiver's ``Retry-After`` when longer (at most ``RETRY_AFTER_CAP``), between.

    Raises (from the constructor):
        ConfigError: the ``ca_file`` cannot be loaded.
    """

    def __init__(
        self,
        resolved: Resolved,
        *,
        ca_file: str | None,
        timeout: float,
        connect_timeout: float,
        attempts: int = 3,
        wait: float = 0.5,
        max_wait: float = 4.0,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.resolved = resolved
        # The pipeline's reason names the target already: "receiver:chat: slack: 400 Bad Request".
        self.where = resolved.kind
        self.attempts = attempts
        self.client = httpx.Client(
            verify=_context(ca_file, f"$.receiver.{resolved.name}.ca_file"),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
            trust_env=False,
            auth=auth,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        )
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Transient),
            stop=self._stop,
            wait=_waiter(wait, max_wait),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def post(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], Mapping[str, str]],
        *,
        retry_field: RetryField = _no_field,
    ) -> Answer:
        """POST ``body`` (``headers()`` made afresh for each attempt); the 2xx answer.

        Raises:
            TransientSendError: still failing after the short retries (park: try later).
            PermanentSendError: 3xx, 410, another 4xx (the dead queue).
        """
        try:
            return self._once(url, body, headers, retry_field)  # the common case, bare
        except Transient as error:
            failed = [error]

        def attempt() -> Answer:
            # Tenacity takes over from the first attempt's failure (its stop, wait and log
            # see it as attempt 1): a post that succeeds at once pays for no retry machinery.
            if failed:
                raise failed.pop()
            return self._once(url, body, headers, retry_field)

        answer: Answer = self._retrying(attempt)
        return answer

    def _once(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], Mapping[str, str]],
        retry_field: RetryField,
    ) -> Answer:
        try:
            with self.client.stream("POST", url, content=body, headers=headers()) as response:
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) >= BODY_LIMIT:
                        break
                answer = Answer(response.status_code, response.headers, data[:BODY_LIMIT])
        except httpx.HTTPError as exc:
            raise self.scrubbed(classify_error(exc, self.where)) from None
        failure = classify_answer(answer, self.where, retry_field)
        if failure is not None:
            raise self.scrubbed(failure)
        return answer

    def scrubbed(self, error: SendError) -> SendError:
        """``error`` with every secret of the receiver (and its URL-quoted form) masked."""
        text = str(error)
        for secret in self.resolved.secrets:
            for form in {secret, quote(secret, safe=""), quote(secret), quote(secret, safe=":/@")}:
                text = text.replace(form, "***")
        if text == str(error):
            return error
        if isinstance(error, RetryLater):
            return RetryLater(text, error.retry_after)
        return type(error)(text)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryLater) and error.retry_after > RETRY_AFTER_CAP:
            return True  # too long to hold the pipeline: park it now
        return state.attempt_number >= self.attempts

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("delivery attempt %d failed, retrying: %s", state.attempt_number, error)
        metrics.delivery_retried(self.resolved.name)

    def close(self) -> None:
        self.client.close()


def _waiter(wait: float, max_wait: float) -> Callable[[tenacity.RetryCallState], float]:
    def waiting(state: tenacity.RetryCallState) -> float:
        backoff = float(min(wait * 2 ** (state.attempt_number - 1), max_wait))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryLater):
            return float(min(max(backoff, error.retry_after), RETRY_AFTER_CAP))
        return backoff

    return waiting


def _context(ca_file: str | None, key: str) -> ssl.SSLContext:
    """A verifying client context: ``ca_file``'s CA, else the system's trust store.

    Raises:
        ConfigError: ``ca_file`` cannot be loaded (naming ``key``).
    """
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(f"{key}: cannot load {ca_file}: {reason}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def classify_answer(answer: Answer, where: str, retry_field: RetryField) -> SendError | None:
    """None for a 2xx; else transient (429, 5xx) or permanent (3xx, 4xx), from the status."""
    status = answer.status
    if 200 <= status < 300:
        return None
    phrase = _phrase(status)
    if status == 429 or status >= 500:
        wait = retry_field(answer) if status == 429 else None
        if wait is None:
            wait = retry_after(answer.headers.get("retry-after"), datetime.now(UTC))
        if wait is not None:
            return RetryLater(f"{where}: {status} {phrase}, retry after {wait:g} s", wait)
        return Transient(f"{where}: {status} {phrase}")
    if 300 <= status < 400:
        return PermanentSendError(
            f"{where}: {status} {phrase}: loginwatch follows no redirect (has the URL moved?)"
        )
    return PermanentSendError(f"{where}: {status} {phrase}")


def classify_error(exc: httpx.HTTPError, where: str) -> Transient:
    """A failure with no answer: every kind is worth trying again (one line, no URL)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return Transient(f"{where}: timed out connecting")
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"{where}: timed out waiting for the answer (it may have arrived)")
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__context__
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY" in str(exc):
            return Transient(f"{where}: TLS certificate not trusted (its CA in ca_file?)")
        return Transient(f"{where}: cannot connect: {_os_reason(exc)}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return Transient(f"{where}: connection dropped before the answer (it may have arrived)")
    return Transient(f"{where}: {type(exc).__name__}")


def _os_reason(exc: BaseException) -> str:
    """``Connection refused``: the OS's words for a connect failure, without any URL."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _phrase(status: int) -> str:
    try:
        import http  # noqa: PLC0415 - only for a failure's reason phrase

        return http.HTTPStatus(status).phrase
    except ValueError:
        return "(unknown status)"


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date), at most
    ``RETRY_AFTER_MAX``; None when missing or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_MAX)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_MAX)


def field_seconds(value: object) -> float | None:
    """A channel's own retry field (a number of seconds), bounded; None when not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return min(float(value), RETRY_AFTER_MAX)


def json_headers(extra: Mapping[str, str] | None = None) -> Callable[[], Mapping[str, str]]:
    """Headers for a JSON POST (the same on every attempt)."""
    fixed = {"Content-Type": "application/json", **(extra or {})}
    return lambda: fixed


class JsonChannel:
    """A ``Channel`` that POSTs the JSON its formatter makes of each notice to one URL."""

    def __init__(
        self,
        poster: Poster,
        url: str,
        payload: Callable[[Notice], Mapping[str, object]],
        *,
        retry_field: RetryField = _no_field,
    ) -> None:
        self.poster = poster
        self.url = url
        self.payload = payload
        self.retry_field = retry_field
        self.headers = json_headers()

    def deliver(self, notice: Notice) -> None:
        """Raises: TransientSendError, PermanentSendError (``Poster.post``)."""
        body = msgspec.json.encode(self.payload(notice))
        self.poster.post(self.url, body, self.headers, retry_field=self.retry_field)

    def close(self) -> None:
        self.poster.close()
