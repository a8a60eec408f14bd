"""Jump hosts: a login to host B from one of host A's own addresses, within
``[detect] hop_window`` of the same user's login on A, is a hop through A.

A's addresses come from its heartbeats (a bastion is usually dual-homed: the address B
sees is rarely the one the client reached). B's alert then names the original client and
the chain (``laptop → bastion → db-1``), and first-seen asks about the original client
as well as about the bastion's address (``Sighting.via``): A's addresses and logins are
A's word, so a lying A can add a chain but never make a new source read as a known one.
Hosts' clocks differ a little, so the
two logins count as one hop when they are within the window either way round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from consumer.core.detections import Hop, Origin


def hop(
    *,
    user: str,
    host: str,
    source: str,
    at: datetime,
    jump_hosts: Mapping[str, Sequence[str]],
    logins: Sequence[Origin],
    window: float,
) -> Hop | None:
    """The hop a login of ``user`` to ``host`` from ``source`` at ``at`` made, or None.

    ``jump_hosts``: address → the hosts whose heartbeats list it; ``logins``: the user's
    recent logins on any host (the store's and the batch's). The nearest login on a host
    that owns ``source`` (not ``host`` itself) within ``window`` seconds is the first leg.
    """
    owners = set(jump_hosts.get(source, ())) - {host}
    if not owners:
        return None
    legs = [
        o for o in logins
        if o.user == user and o.host in owners and abs((at - o.at).total_seconds()) <= window
    ]  # fmt: skip
    if not legs:
        return None
    first = min(legs, key=lambda o: abs((at - o.at).total_seconds()))
    client = first.source or "(local)"
    return Hop(client=client, chain=(client, first.host, host), via_event=first.event_id)
