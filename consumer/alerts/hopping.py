"""Hops through jump hosts, found before first-seen is asked (``consumer/detect/hops.py``).

A login is a hop when its source is one of another host's own addresses (from that host's
heartbeats) and the same user logged in there within ``[detect] hop_window``. First-seen
must then ask about the original client, so the hops of a batch are found before the
batch's first round trip: ``JumpHosts`` keeps the set of every host's addresses in memory
(read again every ``[hosts] check_every`` with a batch's first round trip, at most
``ADDRESSES_MOST``; a heartbeat this worker notes adds its own at once), and only a batch
with a login from one of them costs one more round trip (the owners of those addresses,
the users' logins around then). A login of the same batch counts as a first leg too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Final

import msgspec

from consumer.core import metrics
from consumer.core.detections import Hop, Origin
from consumer.core.enriched import Enriched
from consumer.detect.hops import hop
from consumer.store import Store, sessions
from consumer.store.backends import Row, Statement
from consumer.store.hosts import addresses_statement, hosts_at_statement
from schemas.config import Config
from schemas.errors import StoreError

ADDRESSES_MOST: Final = 200_000  # 32 per host: a fleet of 6,000 dual-homed hosts and more


class JumpHosts:
    """One worker's view of the hosts' addresses, and the hops of its batches."""

    def __init__(self, config: Config, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.window = config.detect.hop_window.seconds
        self.every = config.hosts.check_every.seconds
        self.monotonic = monotonic
        self._addresses: frozenset[str] = frozenset()
        self._next = 0.0

    def refresh_read(self) -> Statement | None:
        """The read of every host's addresses when one is due (it goes with a batch's
        first round trip; ``load`` its rows), else None."""
        if self.monotonic() < self._next:
            return None
        self._next = self.monotonic() + self.every
        return addresses_statement(ADDRESSES_MOST)

    def load(self, rows: Sequence[Row]) -> None:
        self._addresses = frozenset(str(row[0]) for row in rows)

    def learn(self, addresses: Sequence[str]) -> None:
        """Addresses a heartbeat this worker noted listed: hops from them count at once."""
        if len(self._addresses) < ADDRESSES_MOST:
            self._addresses = self._addresses | set(addresses)

    def found(self, store: Store, placed: Sequence[Enriched]) -> list[Hop | None]:
        """The hop of each of ``placed`` (None: none, or not a login). Never raises: a
        store that fails leaves the batch without hops (first-seen asks about the jump
        host then, as before hops were known)."""
        hops: list[Hop | None] = [None] * len(placed)
        asked = [i for i, p in enumerate(placed)
                 if p.event.kind == "login" and p.event.client_ip in self._addresses]  # fmt: skip
        if not asked:
            return hops
        window = timedelta(seconds=self.window)
        users = sorted({placed[i].event.user for i in asked})
        times = {
            u: [placed[i].event.time for i in asked if placed[i].event.user == u] for u in users
        }
        reads = [hosts_at_statement(sorted({placed[i].event.client_ip for i in asked}))]
        reads += [sessions.by_user_statement(u, min(times[u]) - window, max(times[u]) + window)
                  for u in users]  # fmt: skip
        try:
            rows = store.read_all(reads)
        except StoreError:
            metrics.store_error()
            return hops
        owners: dict[str, list[str]] = {}
        for address, host in rows[0]:
            owners.setdefault(str(address), []).append(str(host))
        logins = [o for found in rows[1:] for o in sessions.origins_of(found)]
        for index, enriched in enumerate(placed):
            event = enriched.event
            if index in asked:
                hops[index] = hop(user=event.user, host=event.host, source=event.client_ip,
                                  at=event.time, jump_hosts=owners, logins=logins,
                                  window=self.window)  # fmt: skip
            if event.kind == "login":  # a first leg for the batch's later logins
                found_hop = hops[index]
                logins.append(Origin(event_id=event.id_hex, user=event.user, host=event.host,
                                     service=event.service,
                                     source=found_hop.client if found_hop else event.client_ip,
                                     fingerprint=event.fingerprint, at=event.time,
                                     linked_by=""))  # fmt: skip
        return hops


def with_hop(enriched: Enriched, found: Hop | None, replace: Callable[[str], Enriched]) -> Enriched:
    """``enriched`` with its hop: placed as its original client (``replace``: the event
    placed from that address), so GeoIP, the network and first-seen are the client's."""
    if found is None or found.client == "(local)":
        return enriched if found is None else msgspec.structs.replace(enriched, hop=found)
    client = replace(found.client)
    return msgspec.structs.replace(client, event=enriched.event, hop=found,
                                   received=enriched.received,
                                   session=enriched.session)  # fmt: skip
