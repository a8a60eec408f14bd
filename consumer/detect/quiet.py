"""Quiet hosts: a host that stopped reporting (no event, no heartbeat) for longer than
``[hosts] quiet_after``.

Each host's hook sends a heartbeat with every flush (the flush timer: every 5 minutes), so
a host silent for ``quiet_after`` (2 h) has its hook disabled, its timer stopped, its
network cut, or is down. A host side stopped cleanly (the flush unit's ``ExecStop``, a
shutdown, an uninstall) says goodbye first: its silence reads "stopped", the others'
"gone". ``quiet`` says which hosts are quiet now; one system alert per silence (the
alert's key names the last report, so a redelivery or a second worker sends nothing
twice), and the digest lists them until they report again. A retired host
(``loginwatch host retire``) is watched no longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consumer.core.detections import HostState


@dataclass(frozen=True)
class Quiet:
    """A host quiet for longer than ``quiet_after``: since when, and whether it said
    goodbye (``stopped``) or just went silent (``gone``)."""

    name: str
    since: datetime
    stopped: bool
    why: str = ""
    alerted: bool = False

    @property
    def how(self) -> str:
        return "stopped" if self.stopped else "gone"


def quiet(hosts: list[HostState], now: datetime, quiet_after: float) -> list[Quiet]:
    """The hosts quiet at ``now`` (oldest silence first); retired ones never."""
    found = [
        Quiet(
            name=h.name,
            since=h.last_report,
            stopped=h.goodbye_at is not None,
            why=h.goodbye_why,
            alerted=h.alerted,
        )
        for h in hosts
        if not h.retired and (now - h.last_report).total_seconds() > quiet_after
    ]
    return sorted(found, key=lambda q: (q.since, q.name))


def to_alert(hosts: list[HostState], now: datetime, quiet_after: float) -> list[Quiet]:
    """The quiet hosts whose alert for this silence has not gone out yet."""
    return [q for q in quiet(hosts, now, quiet_after) if not q.alerted]
