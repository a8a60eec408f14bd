"""Prometheus metrics of the worker and the digest scheduler (``[metrics] listen``).

One module holds every metric, so their names are defined once; the stages
call the small functions below at the moment something happened, and
``metrics_server`` exposes them (``/metrics``). prometheus_client keeps its own lock, so
any thread may call these.

Every duration is measured on the central side's clock, from when a delivery *arrived*
here: a host's clock (the event's ``time``, the AMQP ``timestamp``) is the host's word, and
a host saying 1970 must not move a latency figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

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
    "From the event's arrival at this worker to the SMTP server accepting its mail",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)
FIRST_SEEN: Final = Counter(
    "loginwatch_first_seen",
    "Logins from a source never seen before for that user, by scope",
    ["scope"],
)
INTAKE_LAG: Final = Histogram(
    "loginwatch_intake_lag_seconds",
    "From an event's arrival at this process to our ack of it, by queue",
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
LANE_WAIT: Final = Gauge(
    "loginwatch_lane_wait_seconds",
    "How long the oldest alert has waited in each alerts queue (lane), from the worker's own"
    " probes and clock",
    ["queue"],
)
SHED: Final = Counter(
    "loginwatch_shed",
    "Messages of flooding speakers acked and counted instead of processed, by what they were"
    " (refused: junk or a forged identity; failure: a failed login; decided: a login the"
    " policy decided on the flood counts alone, mailing nobody)",
    ["what"],
)
SHEDDING: Final = Gauge(
    "loginwatch_shedding_speakers", "Broker users this worker is shedding messages of now"
)
SYSTEM_ALERTS: Final = Counter(
    "loginwatch_system_alerts",
    "System alerts the central side raised (host-flooding, login-dropped), by kind",
    ["kind"],
)
DELIVERIES: Final = Counter(
    "loginwatch_deliveries",
    "Notices by receiver (every address counts as 'mail') and result: sent (accepted),"
    " retried (a short in-process retry), transient (parked for later), permanent (dead)",
    ["receiver", "result"],
)
DELIVERY_SECONDS: Final = Histogram(
    "loginwatch_delivery_seconds",
    "From the event's arrival at loginwatch (this machine's clock, never the host's) to the"
    " receiver accepting its notice, by receiver ('mail' for every address)",
    ["receiver"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)
DIGEST_WINDOWS: Final = Counter("loginwatch_digest_windows", "Digest windows sent")
STORE_ERRORS: Final = Counter("loginwatch_store_errors", "Store operations that failed")

for _verdict in ("done", "park", "dead"):
    EVENTS.labels(_verdict)
for _result in ("sent", "retried", "parked", "dead"):
    MAILS.labels(_result)
# Resolved once: shedding counts thousands of messages a second.
_SHED_BY: Final = {_what: SHED.labels(_what) for _what in ("refused", "failure", "decided")}


def settled(verdict: str) -> None:
    """The worker settled one delivery: ``done``, ``park`` or ``dead``."""
    EVENTS.labels(verdict).inc()


def decoded(outcome: str) -> None:
    LOGINS.labels(outcome).inc()


def mail_sent(arrived: float, now: float) -> None:
    """The SMTP server accepted, at ``now``, a mail about an event that ``arrived`` here
    (both epoch seconds, this machine's clock)."""
    MAILS.labels("sent").inc()
    MAIL_LATENCY.observe(max(0.0, now - arrived))


def mail_retried() -> None:
    """A short (in-process) retry of one mail after a transient SMTP failure."""
    MAILS.labels("retried").inc()


def mails_failed(parked: int, dead: int) -> None:
    """Mails of one event that go to the retry queues / to the dead queue."""
    if parked:
        MAILS.labels("parked").inc(parked)
    if dead:
        MAILS.labels("dead").inc(dead)


def delivered(receiver: str, arrived: datetime | None) -> None:
    """``receiver`` accepted a notice about an event that arrived at ``arrived`` (None: not
    an event's, e.g. a digest's: counted, no latency)."""
    DELIVERIES.labels(receiver, "sent").inc()
    if arrived is not None:
        waited = (datetime.now(UTC) - arrived).total_seconds()
        DELIVERY_SECONDS.labels(receiver).observe(max(0.0, waited))


def delivery_failed(receiver: str, result: str) -> None:
    """A notice to ``receiver`` failed: ``transient`` (parked) or ``permanent`` (dead)."""
    DELIVERIES.labels(receiver, result).inc()


def delivery_retried(receiver: str) -> None:
    """A short (in-process) retry of one notice to ``receiver``."""
    DELIVERIES.labels(receiver, "retried").inc()


def first_seen(address: bool, network: bool, country: bool) -> None:
    for scope, new in (("address", address), ("network", network), ("country", country)):
        if new:
            FIRST_SEEN.labels(scope).inc()


def acked(queue: str, arrivals: Iterable[float], now: float) -> None:
    """Deliveries of ``queue`` acked at ``now`` that arrived at ``arrivals`` (epoch s, both
    this machine's clock; a clock stepped back counts as 0)."""
    for arrived in arrivals:
        INTAKE_LAG.labels(queue).observe(max(0.0, now - arrived))


def holding(queue: str, count: int, oldest_s: float) -> None:
    """What the consumer of ``queue`` holds unacked now (``Broker.held``)."""
    UNACKED.labels(queue).set(count)
    OLDEST_UNACKED.labels(queue).set(oldest_s)


def lane_wait(queue: str, seconds: float) -> None:
    """How long the oldest alert waits in ``queue`` (consumer/alerts/lanes.py)."""
    LANE_WAIT.labels(queue).set(seconds)


def shed(what: str, count: int = 1) -> None:
    """``count`` messages of a flooding speaker acked and counted: ``refused``, ``failure``
    or ``decided``."""
    (_SHED_BY.get(what) or SHED.labels(what)).inc(count)


def shedding(speakers: int) -> None:
    SHEDDING.set(speakers)


def system_alert(kind: str) -> None:
    SYSTEM_ALERTS.labels(kind).inc()


def digest_window_sent() -> None:
    DIGEST_WINDOWS.inc()


def store_error() -> None:
    STORE_ERRORS.inc()
