"""Prometheus metrics of the worker and the digest scheduler (``[metrics] listen``).

One module holds every metric, so their names are defined once; the stages
call the small functions below at the moment something happened, and
``serve`` exposes them over HTTP (``/metrics``) when the config asks for it.
prometheus_client keeps its own lock, so any thread may call these.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from schemas.errors import ConfigError

EVENTS: Final = Counter(
    "loginwatch_events",
    "Events the worker settled, by verdict (done: acked; park: retry queue; dead: dead queue)",
    ["verdict"],
)
LOGINS: Final = Counter(
    "loginwatch_logins",
    "Decoded events by their PAM outcome (success, failure, unknown)",
    ["outcome"],
)
MAILS: Final = Counter(
    "loginwatch_mails",
    "Alert mails: sent (accepted by SMTP), retried (a short retry), parked, dead",
    ["result"],
)
MAIL_LATENCY: Final = Histogram(
    "loginwatch_delivery_latency_seconds",
    "From the login (the hook's timestamp) to the SMTP server accepting its mail",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)
FIRST_SEEN: Final = Counter(
    "loginwatch_first_seen",
    "Logins from a source never seen before for that user, by scope",
    ["scope"],
)
INTAKE_LAG: Final = Histogram(
    "loginwatch_intake_lag_seconds",
    "From an event's publish (its AMQP timestamp, the host's clock) to our ack of it, by queue",
    ["queue"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400),
)
UNACKED: Final = Gauge(
    "loginwatch_unacked_deliveries",
    "Deliveries this process was handed and has not acked yet, by queue",
    ["queue"],
)
OLDEST_UNACKED: Final = Gauge(
    "loginwatch_oldest_unacked_seconds",
    "How long the oldest delivery this process holds unacked has waited, by queue",
    ["queue"],
)
DIGEST_WINDOWS: Final = Counter("loginwatch_digest_windows", "Digest windows sent")
STORE_ERRORS: Final = Counter("loginwatch_store_errors", "Store operations that failed")

for _verdict in ("done", "park", "dead"):
    EVENTS.labels(_verdict)
for _result in ("sent", "retried", "parked", "dead"):
    MAILS.labels(_result)


def settled(verdict: str) -> None:
    """The worker settled one delivery: ``done``, ``park`` or ``dead``."""
    EVENTS.labels(verdict).inc()


def decoded(outcome: str) -> None:
    LOGINS.labels(outcome).inc()


def mail_sent(login_time: datetime, now: datetime) -> None:
    """The SMTP server accepted a mail about a login at ``login_time``."""
    MAILS.labels("sent").inc()
    MAIL_LATENCY.observe(max(0.0, (now - login_time).total_seconds()))


def mail_retried() -> None:
    """A short (in-process) retry of one mail after a transient SMTP failure."""
    MAILS.labels("retried").inc()


def mails_failed(parked: int, dead: int) -> None:
    """Mails of one event that go to the retry queues / to the dead queue."""
    if parked:
        MAILS.labels("parked").inc(parked)
    if dead:
        MAILS.labels("dead").inc(dead)


def first_seen(address: bool, network: bool, country: bool) -> None:
    for scope, new in (("address", address), ("network", network), ("country", country)):
        if new:
            FIRST_SEEN.labels(scope).inc()


def acked(queue: str, timestamps: Iterable[int | None], now: float) -> None:
    """Deliveries of ``queue`` acked at ``now`` (epoch s); their AMQP timestamps (a
    host's clock: a negative lag counts as 0, a missing timestamp is left out)."""
    for stamp in timestamps:
        if stamp is not None:
            INTAKE_LAG.labels(queue).observe(max(0.0, now - stamp))


def holding(queue: str, count: int, oldest_s: float) -> None:
    """What the consumer of ``queue`` holds unacked now (``Broker.held``)."""
    UNACKED.labels(queue).set(count)
    OLDEST_UNACKED.labels(queue).set(oldest_s)


def digest_window_sent() -> None:
    DIGEST_WINDOWS.inc()


def store_error() -> None:
    STORE_ERRORS.inc()


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::1]:9464"`` → (address, port); port 0: any free port.

    Raises:
        ConfigError: not HOST:PORT.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or not host:
        raise ConfigError(f"$.metrics.listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def serve(listen: str, setting: str = "$.metrics.listen ([metrics] listen)") -> int:
    """Serve ``/metrics`` on ``listen`` in a daemon thread; returns the bound port.
    ``setting`` names what chose the address, for the error.

    Raises:
        ConfigError: a bad address, or the port cannot be bound.
    """
    host, port = parse_listen(listen)
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            # The usual cause: a second worker (or the digest) on this machine, same config.
            hint = (
                "; another loginwatch process on this machine may serve there: give each its"
                f" own port with {setting} (or ${OFFSET_ENV}=N, which"
                " loginwatch-worker@N.service sets: port + N)"
            )
        raise ConfigError(f"{setting}: cannot listen on {listen}: {exc.strerror}{hint}") from None
    return int(server.server_port)


LISTEN_ENV: Final = "LOGINWATCH_METRICS_LISTEN"
# Set by loginwatch-worker@N.service to N: instance N serves on [metrics] listen's
# port + N, so the digest (offset 0) and every worker on a machine share one config.
OFFSET_ENV: Final = "LOGINWATCH_METRICS_PORT_OFFSET"


def start(listen: str | None, environ: dict[str, str]) -> int | None:
    """Serve metrics where ``$LOGINWATCH_METRICS_LISTEN`` or ``[metrics] listen`` says.

    A numeric ``$LOGINWATCH_METRICS_PORT_OFFSET`` shifts the configured port.
    Returns the bound port, or None when neither is set.

    Raises:
        ConfigError: a bad address or offset, or the port cannot be bound.
    """
    if environ.get(LISTEN_ENV):
        return serve(environ[LISTEN_ENV], f"${LISTEN_ENV}")
    if not listen:
        return None
    offset = environ.get(OFFSET_ENV, "0")
    if not offset.isdigit():
        raise ConfigError(f"${OFFSET_ENV}: expected a number, got {offset!r}")
    host, port = parse_listen(listen)
    shifted = port + int(offset) if port else 0
    return serve(f"[{host}]:{shifted}" if ":" in host else f"{host}:{shifted}")
