"""Store API (stub: real implementation follows)."""

from __future__ import annotations

from datetime import datetime

from consumer.model import FirstSeen, PolicyState


class Store:
    """First-seen, delivery log and flood counters. Every method raises StoreError."""

    def observe(
        self,
        user: str,
        *,
        address: str | None,
        network: str | None,
        country: str | None,
        event_id: str,
        now: datetime,
    ) -> FirstSeen:
        """Record a login source; True for each scope seen for the first time.

        Idempotent per ``event_id``: a redelivered event is still first-seen.
        """
        raise NotImplementedError

    def delivered(self, key: str) -> bool:
        raise NotImplementedError

    def record_delivery(self, key: str, now: datetime) -> None:
        raise NotImplementedError

    def flood_state(self, now: datetime, window: float) -> PolicyState:
        raise NotImplementedError

    def note_mail(self, recipient: str, now: datetime, *, burst: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def open_store(url: str) -> Store:
    raise NotImplementedError
