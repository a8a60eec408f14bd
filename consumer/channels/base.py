"""The channel protocol, and sending a notice once: what the pipeline and the digest use.

A ``Channel`` delivers one notice to one target and classifies each failure where it
happens: ``TransientSendError`` (worth trying again later: connect errors, timeouts, SMTP
4xx, HTTP 429 and 5xx) or ``PermanentSendError`` (retrying cannot help: SMTP 5xx, HTTP 3xx
and 4xx, a template error). Whatever short retries a channel makes, it makes inside
``deliver``; a longer outage is the caller's to park.

``send_once`` is check-before, deliver, record-after (architecture.md #4) for one notice,
keyed on the notice's delivery key (the event or window, the receiver and the target): a
redelivery finds the key in the sent log and sends nothing. The worker's pipeline and the
digest's window sender both send through it; each keeps its own failure rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from consumer.core import metrics
from consumer.core.notice import Notice
from schemas.errors import PermanentSendError, TransientSendError
from schemas.receivers import reference


class Channel(Protocol):
    """Delivers notices to one kind of target (``close`` releases its connections)."""

    def deliver(self, notice: Notice) -> None:
        """Deliver ``notice`` to ``notice.target``.

        Raises:
            TransientSendError: try again later (after the channel's own short retries).
            PermanentSendError: retrying cannot help; the reason names no secret.
        """

    def close(self) -> None: ...


class SentLog(Protocol):
    """The sent log: which delivery keys went out (``Store``; the worker's batch)."""

    def was_sent(self, key: str) -> bool: ...

    def record_sent(self, key: str, now: datetime) -> None: ...


def receiver_label(target: str) -> str:
    """What metrics call a target: its receiver's name, or ``mail`` for every address."""
    return reference(target) or "mail"


def _nothing() -> None:
    pass


def send_once(
    sent: SentLog,
    channel: Channel,
    key: str,
    render: Callable[[], Notice],
    now: datetime,
    *,
    before: Callable[[], None] = _nothing,
    between: Callable[[], None] = _nothing,
) -> bool:
    """Deliver the notice ``render`` makes unless the sent log holds ``key``, then record
    ``key``; False: it went out before (nothing rendered, nothing sent).

    ``before`` runs just before the delivery, ``between`` between the delivery and the
    record (the digest renews its lease there, and marks its crash points).

    Raises:
        TransientSendError, PermanentSendError: from ``render`` or the channel (nothing
            recorded); StoreError: from the sent log.
    """
    if sent.was_sent(key):
        return False
    notice = render()
    before()
    label = receiver_label(notice.target)
    try:
        channel.deliver(notice)
    except TransientSendError:
        metrics.delivery_failed(label, "transient")
        raise
    except PermanentSendError:
        metrics.delivery_failed(label, "permanent")
        raise
    metrics.delivered(label, notice.arrived)
    between()
    sent.record_sent(key, now)
    return True
