"""Intake: an event off the digest queue → one row of ``digest_event``.

Who reads an event in their digest (its *audience*) is decided here, once, with the
worker's own routing rules (``consumer/routing.py``): every recipient of a matching route
whose first matching route for them is not ``ignore`` — so recipients of ``immediate``
routes get a digest too (it is where their silenced and folded events surface), and
``digest`` routes are the ones that get *only* the digest. Routes changed later apply to
events stored later.

Where an event is counted (``at``) is decided by when it *arrived*, never by the host's
clock alone: the host's time when it falls inside the window collecting now and not after
the arrival, else the arrival itself. So an event that arrives after its own window was
sent (a host's spool drained late, a clock behind, a forged back-date) is reported in the
current window instead of vanishing, and a clock ahead cannot push it into a future
window. Both times are stored (``arrived_at``, ``host_at``): the digest names the hosts
whose clock was off by more than ``consumer.clock.SKEW``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from consumer.digest.store import EventRow, epoch
from consumer.digest.windows import Window
from consumer.routing import audience
from consumer.stages.enrich import canonical_address
from consumer.store.text import sql_text
from schemas.config import Route
from schemas.event import LoginEvent


def host_time(event: LoginEvent) -> datetime:
    """The host's time for the event, aware (a naive one, which msgspec accepts, is UTC)."""
    return event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC)


def slot(event_time: datetime, collecting: Window, now: datetime) -> int:
    """Where an event that arrived at ``now`` is counted (epoch seconds): its own time
    when that lies in ``[collecting.start, now]``, else ``now``."""
    arrived = max(now, collecting.start)
    return epoch(event_time if collecting.start <= event_time <= arrived else arrived)


def event_row(
    event: LoginEvent, routes: tuple[Route, ...], collecting: Window, now: datetime
) -> EventRow:
    """The stored row of one event that arrived at ``now``."""
    address = canonical_address(event.client_ip) or sql_text(event.client_ip)
    said = host_time(event)
    return (
        event.id_hex,
        slot(said, collecting, now),
        sql_text(event.host),
        sql_text(event.user),
        event.kind,
        address,
        sql_text(event.rhost),
        sql_text(event.auth_method),
        event.dropped,
        " ".join(audience(routes, event)),
        epoch(now),
        epoch(said),
    )
