"""A queue's ready and unacked counts as the broker itself reports them (``rabbitmqctl``).

A passive ``queue.declare`` counts only ready messages: a delivery a consumer holds and never
acks is invisible to it. ``rabbitmqctl list_queues`` also reports ``messages_unacknowledged``,
which is what the steady-intake checks (tests and the chaos scenario) assert is 0.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Counts:
    ready: int
    unacked: int
    consumers: int


def counts(vhost: str, queue: str) -> Counts:
    """``queue``'s counts in ``vhost`` now.

    Raises:
        KeyError: no such queue.
    """
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers",
         "name", "messages_ready", "messages_unacknowledged", "consumers"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        name, ready, unacked, consumers = line.split("\t")
        if name == queue:
            return Counts(int(ready), int(unacked), int(consumers))
    raise KeyError(queue)


def wait_until(done: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll ``done`` until it is true or ``timeout`` seconds passed; returns the last answer."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
