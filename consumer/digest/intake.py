"""Intake: an event off the digest queue → one row of ``digest_event``.

Who reads an event in their digest (its *audience*) is decided here, once, with the
worker's own routing rules (``consumer/core/routing.py``): every recipient of a matching route
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
whose clock was off by more than ``consumer.core.clock.SKEW``.

``Intake`` stores a batch of deliveries this way, in one transaction, and records
first-seen sources as the worker does; the scheduler acks the batch once it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from consumer.broker.delivery import Delivery
from consumer.core.addresses import canonical_address, network_of
from consumer.core.identity import Identity, effective_user
from consumer.core.records import logout_event
from consumer.core.routing import audience
from consumer.digest.lease import Lease
from consumer.digest.tables import DigestStore, EventRow, epoch
from consumer.digest.windows import Schedule, Window, current
from consumer.store import Sighting, Store
from consumer.store.text import sql_text
from schemas import wire
from schemas.config import Config, Route
from schemas.errors import DecodeError, StoreError
from schemas.event import LoginEvent
from schemas.nodes import broker_user
from schemas.records import Heartbeat, Logout

log = logging.getLogger("loginwatch.digest")

LOOKBACK = timedelta(days=7)  # a scheduler that was down sends what it missed, this far back


def host_time(event: LoginEvent) -> datetime:
    """The host's time for the event, aware (a naive one, which msgspec accepts, is UTC)."""
    return event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC)


def slot(event_time: datetime, collecting: Window, now: datetime) -> int:
    """Where an event that arrived at ``now`` is counted (epoch seconds): its own time
    when that lies in ``[collecting.start, now]``, else ``now``."""
    arrived = max(now, collecting.start)
    return epoch(event_time if collecting.start <= event_time <= arrived else arrived)


def event_row(
    event: LoginEvent,
    routes: tuple[Route, ...],
    collecting: Window,
    now: datetime,
    session: float | None = None,
) -> EventRow:
    """The stored row of one event that arrived at ``now``; ``session``: a logout's length
    (seconds, from its wtmp or wtmpdb record)."""
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
        event.fingerprint,
        sql_text(event.service),
        session,
    )


class Intake:
    """Stores the digest queue's events: a batch in one transaction, first-seen recorded as
    the worker records it; an event that cannot be stored is handed back to be dead-lettered."""

    def __init__(self, config: Config, events: DigestStore, seen: Store, lease: Lease) -> None:
        """``seen``: the store whose first-seen table the worker writes too; it must be the
        events' store (``events.store``): a batch's events and first-seen sources are
        written in one transaction of that store.

        Raises:
            ValueError: ``seen`` is another store.
        """
        if seen is not events.store:
            raise ValueError("the digest intake writes events and first-seen to one store")
        self.config = config
        self.events = events
        self.seen = seen
        self.lease = lease
        self.schedule = Schedule.from_config(config.digest)
        self.identity = Identity.from_config(config)
        self.own_user = broker_user(config.broker)
        # The lengths of the logouts being stored (by event id), until their rows are made.
        self._lengths: dict[str, float | None] = {}

    def store(self, batch: Sequence[Delivery], now: datetime) -> list[Unstorable]:
        """Store the events of ``batch`` in one transaction; the undecodable ones are skipped
        (the worker dead-letters its own copy). Returns the deliveries to dead-letter.

        A batch that fails is stored one event at a time: an event that still fails
        while the store takes other writes (the lease renewal) is returned with the reason,
        and never takes the rest of its batch with it.

        Raises:
            StoreError: the store fails, or the lease is lost (nothing may be acked: every
                unacked delivery comes back; stored ones are kept once).
        """
        collecting = current(self.schedule, now, self.events.cuts(now - LOOKBACK))
        self._lengths.clear()  # this batch's logouts only
        taken = [(d, event) for d in batch if (event := self._decoded(d)) is not None]
        try:
            self._store(taken, collecting, now)
        except Exception as exc:  # any row of the batch: find it below
            log.warning("digest: storing a batch of %d failed (%s); storing them one by one",
                        len(taken), _why(exc))  # fmt: skip
            return [u for d, e in taken if (u := self._store_alone(d, e, collecting, now))]
        return []

    def _decoded(self, delivery: Delivery) -> LoginEvent | None:
        user = effective_user(delivery.user_id, delivery.headers, self.own_user)
        try:
            found = wire.decode(delivery.body)
            if isinstance(found, Heartbeat):
                # The digest queue binds every type; the worker keeps the hosts table.
                return None
            if isinstance(found, Logout):
                # The session's end it stands for, with its length (core/records.py).
                checked = self.identity.checked(found, user, delivery.body)
                self._lengths[checked.id_hex] = checked.length
                return logout_event(checked)
            return self.identity.checked(found, user, delivery.body)
        except Exception as exc:  # DecodeError, or a decoder bug: never the batch's end
            # The worker dead-letters its own copy of this message, with the reason.
            reason = exc.reason if isinstance(exc, DecodeError) else _why(exc)
            log.warning("digest: skipping an undecodable message: %s", reason[:200])
            return None

    def _store(
        self, taken: list[tuple[Delivery, LoginEvent]], collecting: Window, now: datetime
    ) -> None:
        rows = [event_row(e, self.config.route, collecting, now, self._lengths.get(e.id_hex))
                for _, e in taken]  # fmt: skip
        self.events.add_events(rows, [s for d, e in taken if (s := self._sighting(d, e, now))])

    def _sighting(self, delivery: Delivery, event: LoginEvent, now: datetime) -> Sighting | None:
        """First-seen as the worker records it (idempotent per event id), so the digest's
        first-seen list does not depend on a worker sharing the store. A relay's report is
        no vote for other hosts (Identity.votes), here as in the worker."""
        address = canonical_address(event.client_ip)
        if event.kind != "login" or not (address or event.fingerprint):
            return None
        user = effective_user(delivery.user_id, delivery.headers, self.own_user)
        return Sighting(event.user, event.id_hex, now, address=address,
                        network=network_of(address) if address else None, host=event.host,
                        vouchers=self.config.enrich.first_seen_hosts,
                        votes=self.identity.votes(user, event.host),
                        key=event.fingerprint or None)  # fmt: skip

    def _store_alone(
        self, delivery: Delivery, event: LoginEvent, collecting: Window, now: datetime
    ) -> Unstorable | None:
        """Store one event; or, when the store takes other writes but not it, say why not.

        Raises:
            StoreError: the store fails for other writes too, or the lease is gone.
        """
        try:
            self._store([(delivery, event)], collecting, now)
            return None
        except Exception as exc:
            error = exc
        if not self.lease.renew():  # raises StoreError when the store is down
            raise StoreError(f"lost the lease while storing event {event.id_hex}")
        return Unstorable(delivery, f"digest: cannot store the event: {_why(error)}", event.id_hex)


@dataclass(frozen=True)
class Unstorable:
    """A delivery whose event the store refused (while it took other writes): dead."""

    delivery: Delivery
    reason: str
    event_id: str


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
