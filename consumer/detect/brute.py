"""Brute force, then success: a login from a source that failed just before.

The worker counts every failed login per host, source and minute, the ones it sheds while
their speaker floods included (``consumer/store/failures.py``); the pipeline reads the
counts of a login's source over ``[detect] brute_window``, this host's and the fleet's,
and ``brute_force`` says whether they make the login one that follows a brute force.
"""

from __future__ import annotations

from consumer.core.detections import Brute


def brute_force(host: int, fleet: int, *, window: float, minimum: int) -> Brute | None:
    """The brute force a login follows: ``host`` failed logins from its source on its own
    host and ``fleet`` on all hosts (this one included) within ``window`` seconds; None
    when fewer than ``minimum`` came from anywhere (a typo or two is no attack)."""
    fleet = max(fleet, host)
    if fleet < minimum or fleet <= 0:
        return None
    return Brute(host=max(host, 0), fleet=fleet, window=window)


def source_of(client_ip: str, rhost: str) -> str:
    """The source failures are counted under: the client address, else PAM_RHOST (what the
    worker counts shed failures by, ``consumer/alerts/speakers.py``)."""
    return client_ip or rhost
