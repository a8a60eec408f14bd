"""The worker's share of the host's records that are not events: heartbeats and logouts.

The alert lanes bind every message type the hosts send (``schemas.topology.ALERT_TYPES``),
and the routing key is the publisher's choice, so the worker decodes any of them
(``Decoder.message``) and checks the type it got:

- a heartbeat updates its host's row and addresses (``Store.note_beats``: one transaction
  per batch) and nothing else: it is no event, so it never reaches a route, a silence or
  the policy, whatever a route's ``kinds`` say;
- a logout becomes the event of the session's end it stands for (``core/records.py``),
  with its length (``Session``), and goes through the pipeline as any event: the
  detections find its login (``consumer/alerts/detecting.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from consumer.core import metrics
from consumer.core.detections import Session
from consumer.core.records import heartbeat_addresses, logout_event
from consumer.store import Beat, Store
from schemas.errors import StoreError
from schemas.event import LoginEvent
from schemas.records import Heartbeat, Logout

log = logging.getLogger("loginwatch.worker")


def beat_of(heartbeat: Heartbeat, now: datetime) -> Beat:
    """A heartbeat as the hosts table keeps it (it arrived ``now``)."""
    return Beat(name=heartbeat.host, at=now, version=heartbeat.hook_version,
                spool_depth=heartbeat.spool_depth, dropped=heartbeat.dropped,
                addresses=heartbeat_addresses(heartbeat), goodbye=heartbeat.goodbye,
                why=heartbeat.why)  # fmt: skip


def as_event(message: LoginEvent | Logout) -> tuple[LoginEvent, Session | None]:
    """The event a message stands for, and for a logout its session."""
    if isinstance(message, LoginEvent):
        return message, None
    return logout_event(message), Session(seconds=message.length, login_at=message.login_time)


def note_beats(store: Store, beats: Sequence[Beat]) -> str | None:
    """Write the batch's heartbeats; None when written, else why not (park them)."""
    if not beats:
        return None
    try:
        store.note_beats(beats)
    except StoreError as exc:
        metrics.store_error()
        return f"store: heartbeats not written: {exc}"
    for beat in beats:
        # One line per host every flush would be a fleet's steady log flood: a goodbye only.
        level = logging.INFO if beat.goodbye else logging.DEBUG
        log.log(level, "heartbeat from %r: spool %d, dropped %d%s", beat.name, beat.spool_depth,
                beat.dropped, f", goodbye ({beat.why})" if beat.goodbye else "")  # fmt: skip
    return None
