"""A tiny MaxMind DB (.mmdb) writer, enough for GeoIP tests to build their own database.

Follows the MaxMind DB format spec 2.0: a binary search tree over IPv6 bits (IPv4 networks
live under ``::/96``) with 24-bit records, a 16-byte separator, the data section, then the
metadata marker and map. Supports strings, doubles (Python floats: a City record's
``location`` coordinates), unsigned ints, maps and arrays — what GeoIP2 City records use.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from pathlib import Path
from typing import Any

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


def write_mmdb(
    path: Path, networks: dict[str, dict[str, Any]], db_type: str = "GeoIP2-City"
) -> None:
    """Write ``{"192.0.2.0/24": {"country": {...}, "city": {...}}, ...}`` as an .mmdb file."""
    root: list[Any] = [None, None]
    data = bytearray()
    for network, values in networks.items():
        bits, length = _bits(network)
        offset = len(data)
        data += encode(values)
        node = root
        for bit in bits[: length - 1]:
            if not isinstance(node[bit], list):
                node[bit] = [None, None]
            node = node[bit]
        node[bits[length - 1]] = ("data", offset)
    nodes: list[list[Any]] = []
    _number(root, nodes)
    count = len(nodes)
    index = {id(node): i for i, node in enumerate(nodes)}

    def record(child: Any) -> int:
        if child is None:
            return count
        if isinstance(child, tuple):
            return count + 16 + int(child[1])
        return index[id(child)]

    tree = bytearray()
    for node in nodes:
        tree += record(node[0]).to_bytes(3, "big") + record(node[1]).to_bytes(3, "big")
    metadata = {
        "node_count": ("uint32", count),
        "record_size": ("uint16", 24),
        "ip_version": ("uint16", 6),
        "database_type": db_type,
        "languages": ["en"],
        "binary_format_major_version": ("uint16", 2),
        "binary_format_minor_version": ("uint16", 0),
        "build_epoch": ("uint64", int(time.time())),
        "description": {"en": "loginwatch test database"},
    }
    path.write_bytes(bytes(tree) + bytes(16) + bytes(data) + METADATA_MARKER + encode(metadata))


def _bits(network: str) -> tuple[list[int], int]:
    net = ipaddress.ip_network(network, strict=False)
    if net.version == 4:
        value, length = int(net.network_address), 96 + net.prefixlen
    else:
        value, length = int(net.network_address), net.prefixlen
    return [(value >> (127 - i)) & 1 for i in range(128)], length


def _number(node: list[Any], out: list[list[Any]]) -> None:
    out.append(node)
    for child in node:
        if isinstance(child, list):
            _number(child, out)


_TYPES = {
    "pointer": 1,
    "utf8": 2,
    "double": 3,
    "uint16": 5,
    "uint32": 6,
    "map": 7,
    "uint64": 9,
    "array": 11,
}


def encode(value: Any) -> bytes:
    """One data-section value; ``("uint32", n)`` picks an int type (plain ints are uint32)."""
    if isinstance(value, tuple):
        kind, number = value
        return _unsigned(kind, number)
    if isinstance(value, str):
        raw = value.encode()
        return _control("utf8", len(raw)) + raw
    if isinstance(value, bool):
        raise TypeError("booleans are not needed by these tests")
    if isinstance(value, float):
        return _control("double", 8) + struct.pack(">d", value)
    if isinstance(value, int):
        return _unsigned("uint32", value)
    if isinstance(value, dict):
        body = b"".join(encode(str(k)) + encode(v) for k, v in value.items())
        return _control("map", len(value)) + body
    if isinstance(value, list):
        return _control("array", len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _unsigned(kind: str, number: int) -> bytes:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return _control(kind, len(raw)) + raw


def _control(kind: str, size: int) -> bytes:
    type_number = _TYPES[kind]
    if size < 29:
        size_bits, extra = size, b""
    elif size < 29 + 256:
        size_bits, extra = 29, bytes([size - 29])
    elif size < 285 + 65536:
        size_bits, extra = 30, struct.pack(">H", size - 285)
    else:
        size_bits, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_number <= 7:
        return bytes([(type_number << 5) | size_bits]) + extra
    return bytes([size_bits, type_number - 7]) + extra


def city(
    iso: str,
    country: str,
    name: str | None = None,
    *,
    at: tuple[float, float] | None = None,
    radius: int | None = None,
) -> dict[str, Any]:
    """A GeoIP2-City-shaped record; ``at``: its (latitude, longitude), ``radius``: its
    ``accuracy_radius`` in km."""
    record: dict[str, Any] = {"country": {"iso_code": iso, "names": {"en": country}}}
    if name:
        record["city"] = {"names": {"en": name}}
    if at is not None:
        location: dict[str, Any] = {"latitude": float(at[0]), "longitude": float(at[1])}
        if radius is not None:
            location["accuracy_radius"] = ("uint16", radius)
        record["location"] = location
    return record
