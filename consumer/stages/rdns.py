"""Reverse DNS with a time bound, forward confirmation and a small LRU cache.

A PTR record is chosen by whoever controls the address's reverse zone, so a name only
counts as *verified* when it resolves back to the same address (forward-confirmed reverse
DNS). Failures and timeouts are answers too ("no name"), cached like names, so a dead
resolver costs each address one timeout per TTL, not one per login.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import dns.exception
import dns.resolver
import dns.reversename

log = logging.getLogger(__name__)


class ReverseDns:
    """``lookup(address) -> (name or None, verified)``; thread-safe."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver | None = None,
        *,
        timeout: float = 1.0,
        cache_size: int = 4096,
        cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver or system_resolver()
        self.timeout = timeout
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, str | None, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, address: str) -> tuple[str | None, bool]:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None, False
        key = str(ip)
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1], hit[2]
        name, verified = self._resolve(key)
        if self.cache_size:
            with self._lock:
                self._cache[key] = (now + self.cache_ttl, name, verified)
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return name, verified

    def _resolve(self, address: str) -> tuple[str | None, bool]:
        try:
            answer = self.resolver.resolve(
                dns.reversename.from_address(address), "PTR", lifetime=self.timeout
            )
        except dns.exception.DNSException:
            return None, False
        names = sorted(rr.target.to_text(omit_final_dot=True) for rr in answer)
        if not names:
            return None, False
        return names[0], self._confirms(names[0], address)

    def _confirms(self, name: str, address: str) -> bool:
        rdtype = "AAAA" if ":" in address else "A"
        try:
            answer = self.resolver.resolve(name, rdtype, lifetime=self.timeout, search=False)
        except dns.exception.DNSException:
            return False
        wanted = ipaddress.ip_address(address)
        return any(ipaddress.ip_address(rr.address) == wanted for rr in answer)


def system_resolver() -> dns.resolver.Resolver:
    """The resolver of /etc/resolv.conf; without one, a resolver that fails every lookup
    at once (no name, unverified) rather than a worker that cannot start."""
    try:
        return dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        log.warning("no DNS resolver configured (/etc/resolv.conf): reverse DNS is off")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = []
        return resolver
