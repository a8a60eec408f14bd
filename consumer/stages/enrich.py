"""Enrich stage: what the central side learns about an event's source, in two steps.

``facts(event, now)`` is the cheap part every event gets before the policy decides: GeoIP
(a memory-mapped file), the network, and first-seen from the store. ``names(enriched)`` is
the costly part, reverse DNS (``lookups/rdns.py``: network round trips, one time bound per
address), which the pipeline asks for only when a mail will go out; the digest looks up its
listed sources itself when it is made.

Reverse DNS and GeoIP never fail an event: no answer in time, or no database, leaves the
fields empty. First-seen comes from the store, per host (``Store.observe``), and is recorded
only for successful logins; other events (failed passwords) are compared without recording,
so an attacker's attempts never make a source look familiar. A failed login is no
first-seen question at all: every brute-force source is new, and "NEW SOURCE" on each
would drown the one that matters (the digest counts new failure sources instead). The
login's SSH key is a scope of its own: "a key this user never used before".
"""

from __future__ import annotations

from datetime import datetime

import dns.resolver
import msgspec

from consumer.core.addresses import canonical_address, network_of
from consumer.core.enriched import Enriched
from consumer.lookups.geoip import NOWHERE, GeoIp
from consumer.lookups.rdns import ReverseDns
from consumer.store import Sighting, Store
from schemas.config import EnrichConfig
from schemas.event import LoginEvent


class Enricher:
    """``enricher(event, now) -> Enriched``; thread-safe if the store is.

    Raises (from the constructor):
        ConfigError: the GeoIP database cannot be opened.
    """

    def __init__(
        self,
        config: EnrichConfig,
        store: Store,
        *,
        resolver: dns.resolver.Resolver | None = None,
    ) -> None:
        self.store = store
        self.rdns = (
            ReverseDns(
                resolver,
                timeout=config.dns_timeout,
                cache_size=config.dns_cache_size,
                cache_ttl=config.dns_cache_ttl.seconds,
                negative_ttl=config.dns_negative_ttl.seconds,
            )
            if config.dns
            else None
        )
        self.geoip = GeoIp(config.geoip_db) if config.geoip_db else None
        self.first_seen_hosts = config.first_seen_hosts

    def __call__(self, event: LoginEvent, now: datetime) -> Enriched:
        """``names(facts(event, now))``: everything, for callers that mail every event.

        Raises:
            StoreError: the first-seen lookup failed (retry the event later).
        """
        return self.names(self.facts(event, now))

    def facts(self, event: LoginEvent, now: datetime, *, votes: bool = True) -> Enriched:
        """The event with its source's place, network and first-seen marks (no DNS).
        ``votes=False``: a relay reported it (``Store.observe``).

        Raises:
            StoreError: the first-seen lookup failed (retry the event later).
        """
        placed = self.placed(event, now)
        seen = self.store.observe_all([self.sighting(placed, now, votes=votes)])[0]
        return msgspec.structs.replace(placed, first_seen=seen)

    def placed(self, event: LoginEvent, now: datetime) -> Enriched:
        """The event with its source's place and network, first-seen not asked yet: the
        pipeline asks the store for a batch of events at once (``sighting``)."""
        address = canonical_address(event.client_ip)
        place = self.geoip.lookup(address) if self.geoip and address else NOWHERE
        return Enriched(
            event=event,
            country=place.country,
            country_name=place.country_name,
            city=place.city,
            network=network_of(address) if address else None,
            received=now,
            latitude=place.latitude,
            longitude=place.longitude,
            radius=place.radius,
        )

    def sighting(self, placed: Enriched, now: datetime, *, votes: bool = True) -> Sighting:
        """What the store records (or, for a failed login, only compares) about ``placed``'s
        source: its first-seen marks (``Store.observe``)."""
        event = placed.event
        if event.kind != "login":
            return Sighting(user=event.user, event_id=event.id_hex, now=now, record=False)
        # A hop through a jump host: first-seen asks about the original client, and about
        # the jump host's address, which the jump host's heartbeats cannot make familiar.
        seen = canonical_address(event.client_ip)
        address = canonical_address(placed.hop.client) if placed.hop is not None else seen
        return Sighting(
            user=event.user,
            event_id=event.id_hex,
            now=now,
            address=address,
            via=seen if seen != address else None,
            network=placed.network,
            country=placed.country,
            record=True,
            host=event.host,
            vouchers=self.first_seen_hosts,
            votes=votes,
            key=event.fingerprint or None,
        )

    def names(self, enriched: Enriched) -> Enriched:
        """``enriched`` with its source's reverse DNS name; within ``[enrich] dns_timeout``."""
        address = canonical_address(enriched.event.client_ip)
        if self.rdns is None or address is None:
            return enriched
        name, verified = self.rdns.lookup(address)
        return msgspec.structs.replace(enriched, rdns=name, rdns_verified=verified)

    def close(self) -> None:
        if self.geoip is not None:
            self.geoip.close()
