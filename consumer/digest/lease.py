"""The digest scheduler's lease: one process at a time stores and sends digests.

The lease is a row of the shared store (``digest_lease``, SQL in ``DigestStore``): taken
when free, expired or already ours, good for ``ttl`` seconds by the lease's own clock
(real time: every scheduler's clock must agree on it, unlike the simulated digest clock of
the tests). Its holder renews it every tick and after every claim of a window's row, and
releases it on a clean shutdown so that a standby takes over at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from consumer.digest.tables import DigestStore
from schemas.config import Config
from schemas.errors import LoginwatchError


class LeaseLost(LoginwatchError):
    """Another scheduler holds the lease now: stop sending, stand by."""


class Lease:
    """``owner``'s hold on the scheduler lease; every method raises ``StoreError`` when the
    store fails."""

    def __init__(
        self,
        store: DigestStore,
        owner: str,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.owner = owner
        self.ttl = ttl
        self.now = clock  # the lease's clock: claims are stamped with it too

    @classmethod
    def of(
        cls,
        config: Config,
        store: DigestStore,
        owner: str,
        clock: Callable[[], float] = time.time,
    ) -> Lease:
        """The lease ``[digest] lease`` long."""
        return cls(store, owner, config.digest.lease.seconds, clock)

    def acquire(self) -> bool:
        """Take the lease, or renew it when it is ours; False: someone else holds it."""
        return self._store.acquire(self.owner, self.now(), self.ttl)

    def renew(self) -> bool:
        """Renew the lease (taking it back if it lapsed and nobody took it); False: lost."""
        return self.acquire()

    def release(self) -> None:
        """Give the lease up at once (clean shutdown), so a standby need not wait."""
        self._store.release(self.owner)

    def holder(self) -> str | None:
        """Who holds the lease now, if anyone."""
        return self._store.holder(self.now())
