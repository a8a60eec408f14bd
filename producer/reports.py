"""What the flush timer sends besides the spool: a heartbeat (and logouts, ``producer.
sessions``), and the goodbye of a clean stop.

A heartbeat says the host side is alive, how deep its spool is, what it dropped, its
version and its own addresses (a bastion is usually dual-homed: the central side tells a
hop through it by them). The addresses come from the kernel's tables
(``/proc/self/net/fib_trie`` for IPv4, ``/proc/self/net/if_inet6`` for IPv6: readable
under the flush unit's ``ProcSubset=pid``), loopback and link-local left out.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Union

from producer import ledger
from producer.amqp import connect
from producer.backlog import Backlog
from producer.shared import log
from schemas import wire
from schemas.config import Config
from schemas.nodes import NodeCursor
from schemas.records import MAX_ADDRESSES, Heartbeat, Logout
from schemas.version import VERSION

Report = Union[Heartbeat, Logout]


def heartbeat(config: Config, *, goodbye: bool = False, why: str = "") -> Heartbeat:
    """This host's heartbeat now (a goodbye with ``goodbye``); never raises for a spool or
    a table it cannot read (it says so in syslog and reports zeros)."""
    depth = dropped = 0
    try:
        with Backlog(config.spool.dir) as backlog:
            depth = len(backlog.pending())
        dropped = ledger.read(config.spool.dir).total
    except FileNotFoundError:
        pass  # no spool yet: nothing waits, nothing dropped
    except OSError as exc:
        log(f"heartbeat: spool unreadable, reported as empty: {exc}")
    return Heartbeat(
        id=os.urandom(16),
        time=datetime.now(timezone.utc),
        host=config.host.name or os.uname().nodename,
        hook_version=VERSION,
        spool_depth=min(depth, 2**32 - 1),
        dropped=min(dropped, 2**32 - 1),
        addresses=host_addresses()[:MAX_ADDRESSES],
        goodbye=goodbye,
        why=why[:64],
    )


def host_addresses(proc: str = "/proc/self/net") -> tuple[bytes, ...]:
    """This host's own addresses, 4 or 16 raw bytes each, IPv4 first, no loopback and no
    link-local; empty where the kernel's tables cannot be read."""
    found: list[bytes] = []
    for address in _ipv4(proc):
        raw = socket.inet_aton(address)
        if raw[0] != 127 and raw[:2] != b"\xa9\xfe" and raw not in found:
            found.append(raw)
    for raw in _ipv6(proc):
        loopback = raw == socket.inet_pton(socket.AF_INET6, "::1")
        if not loopback and raw[:2] != b"\xfe\x80" and raw not in found:
            found.append(raw)
    return tuple(found)


def _ipv4(proc: str) -> list[str]:
    """The local addresses of fib_trie: an ``|-- ADDRESS`` line followed by ``/32 host
    LOCAL``."""
    try:
        with open(f"{proc}/fib_trie", encoding="ascii", errors="replace") as table:
            lines = table.read(1 << 20).splitlines()
    except OSError:
        return []
    found = []
    for line, after in zip(lines, lines[1:]):
        words = line.split()
        if len(words) == 2 and words[0] == "|--" and "/32 host LOCAL" in after:
            found.append(words[1])
    return found


def _ipv6(proc: str) -> list[bytes]:
    """if_inet6: ``ADDRESS(32 hex) IFINDEX PREFIXLEN SCOPE FLAGS NAME``."""
    try:
        with open(f"{proc}/if_inet6", encoding="ascii", errors="replace") as table:
            lines = table.read(1 << 20).splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        words = line.split()
        if len(words) >= 4 and len(words[0]) == 32:
            try:
                found.append(bytes.fromhex(words[0]))
            except ValueError:
                continue
    return found


def send(config: Config, reports: Sequence[Report]) -> None:
    """Publish ``reports`` in order, each confirmed, on one connection.

    Raises:
        BrokerError: no node answered, or one refused a report (nothing after it is sent).
        ConfigError: the password or TLS files are unusable.
    """
    if not reports:
        return
    nodes = NodeCursor(len(config.broker.nodes), config.host.name or os.uname().nodename)
    channel = connect(config.broker, nodes.order())
    try:
        for report in reports:
            channel.publish("", wire.encode(report), report.id_hex, report.time,
                            message_type=wire.message_type(report))  # fmt: skip
    finally:
        channel.close()
