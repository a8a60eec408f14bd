"""A source address as the central side compares it: canonical form, and its network."""

from __future__ import annotations

import ipaddress


def canonical_address(text: str) -> str | None:
    """The address in canonical form (IPv4-mapped IPv6 as IPv4); None when not an address."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def network_of(address: str) -> str:
    """The /24 of an IPv4 address, the /64 of an IPv6 one: what "the same network" means."""
    prefix = 24 if ":" not in address else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
