"""Reverse DNS in one time bound per address, forward-confirmed, with a bounded cache.

A PTR record is chosen by whoever controls the address's reverse zone, so a name only
counts as *verified* when it resolves back to the same address (forward-confirmed reverse
DNS), and a name is shown only when it is a plain LDH host name (``hostname``).

One ``lookup`` spends at most ``timeout`` seconds on *all* its queries together: the PTR
query, and the forward (A/AAAA) query of each name it returned, share one deadline. A
stranger whose reverse zone, or whose names' zone, never answers costs one bound, once:

- A name (verified or not) is cached per address for ``cache_ttl``.
- No name (NXDOMAIN, no PTR record, no usable name) is cached for ``negative_ttl`` per
  address for IPv4 (neighbours often differ and the answer came fast), and per /64 for IPv6,
  where one owner holds 2^64 addresses and per-address caching would never hit.
- A lookup that ran out of time, or whose servers failed (SERVFAIL), or that took more than
  half the bound, marks its whole network, the /24 (IPv4) or /64 (IPv6), for
  ``negative_ttl``: no DNS for any other address in it.
  Slowness is a property of the servers the network's owner chose, and rotating through the
  addresses of one network must not buy a new timeout each time. The price: other addresses
  of that network show no name until the mark expires (names are shown, never decided on).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, NamedTuple

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

log = logging.getLogger(__name__)

# PTR names forward-checked per address: a PTR set may hold hundreds, all under one deadline.
MAX_NAMES: Final = 4
# RFC 1035 limits a name to 255 octets on the wire, 253 characters as text; a host name of
# more labels than this is a display trick, not a host.
MAX_NAME: Final = 253
MAX_LABELS: Final = 32
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC: Final = re.compile(r"[0-9]+")
# Time left below which a forward query is not started (it could not get an answer).
_MIN_QUERY: Final = 0.005


class Answer(NamedTuple):
    name: str | None
    verified: bool


NO_NAME: Final = Answer(None, False)


class _Found(NamedTuple):
    answer: Answer
    # "name": cache per address; "absent": per address (v4) or /64 (v6); "slow": the network.
    kind: str


class ReverseDns:
    """``lookup(address) -> (name or None, verified)``; thread-safe, never raises."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver | None = None,
        *,
        timeout: float = 1.0,
        cache_size: int = 4096,
        cache_ttl: float = 3600.0,
        negative_ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver or system_resolver()
        self.timeout = timeout
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self.negative_ttl = negative_ttl
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, Answer]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, address: str) -> Answer:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return NO_NAME
        own, network = str(ip), _network(ip)
        now = self.clock()
        for key in (own, network):
            hit = self._cached(key, now)
            if hit is not None:
                return hit
        started = time.monotonic()
        found = self._resolve(own, started + self.timeout)
        if found.kind != "slow" and time.monotonic() - started > self.timeout / 2:
            # Answered, but only just: servers that answer each address near the deadline
            # would otherwise cost a bound per address of their network.
            self._remember(network, NO_NAME, now + self.negative_ttl)
        if found.kind == "name":
            self._remember(own, found.answer, now + self.cache_ttl)
        elif found.kind == "absent":
            self._remember(own if ip.version == 4 else network, NO_NAME, now + self.negative_ttl)
        else:
            if found.answer.name is not None:  # the PTR answered, its forward zone did not
                self._remember(own, found.answer, now + self.negative_ttl)
            self._remember(network, NO_NAME, now + self.negative_ttl)
        return found.answer

    def _cached(self, key: str, now: float) -> Answer | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] <= now:
                return None
            self._cache.move_to_end(key)
            return hit[1]

    def _remember(self, key: str, answer: Answer, expires: float) -> None:
        if not self.cache_size:
            return
        with self._lock:
            self._cache[key] = (expires, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _resolve(self, address: str, deadline: float) -> _Found:
        try:
            answer = self.resolver.resolve(
                dns.reversename.from_address(address),
                "PTR",
                lifetime=max(deadline - time.monotonic(), _MIN_QUERY),
            )
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            return _Found(NO_NAME, "slow")
        except dns.exception.DNSException:
            return _Found(NO_NAME, "absent")
        names = sorted({name for rr in answer if (name := hostname(rr.target)) is not None})
        if not names:
            return _Found(NO_NAME, "absent")
        return self._confirm_any(names[:MAX_NAMES], address, deadline)

    def _confirm_any(self, names: list[str], address: str, deadline: float) -> _Found:
        """The first name that resolves back to ``address``, before ``deadline``; else the
        first name, unverified ("slow" when time ran out before every name was asked)."""
        for name in names:
            left = deadline - time.monotonic()
            confirmed = self._confirms(name, address, left) if left >= _MIN_QUERY else None
            if confirmed is None:
                return _Found(Answer(names[0], False), "slow")
            if confirmed:
                return _Found(Answer(name, True), "name")
        return _Found(Answer(names[0], False), "name")

    def _confirms(self, name: str, address: str, lifetime: float) -> bool | None:
        """True when ``name`` resolves to ``address``; None when it ran out of time."""
        rdtype = "AAAA" if ":" in address else "A"
        try:
            answer = self.resolver.resolve(
                dns.name.from_text(name), rdtype, lifetime=lifetime, search=False
            )
        except (dns.exception.Timeout, dns.resolver.NoNameservers):
            return None
        except dns.exception.DNSException:
            return False
        wanted = ipaddress.ip_address(address)
        return any(ipaddress.ip_address(rr.address) == wanted for rr in answer)


def hostname(target: dns.name.Name) -> str | None:
    """The PTR target as a lower-case LDH host name, or None when it is not one.

    The name is chosen by the address's owner: anything but letters, digits and inner
    hyphens (escapes, ``<``, ``_``, spaces, bytes) is refused rather than shown, IDNs stay
    in their ASCII ``xn--`` form (never decoded into look-alike Unicode), more than
    MAX_LABELS labels are refused, and so is an all-numeric last label (``10.0.0.1.``, which
    reads as another address).
    """
    text = target.to_text(omit_final_dot=True).lower()
    if not text or text == "." or len(text) > MAX_NAME:
        return None
    labels = text.split(".")
    if len(labels) > MAX_LABELS or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if _NUMERIC.fullmatch(labels[-1]):
        return None
    return text


def _network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


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
