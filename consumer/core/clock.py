"""A host's clock against the central side's: the event's time is the host's word.

An event is counted where it arrived (``digest/intake.py``); this module only says when a
host's time is off enough to tell the reader. Behind can also mean the event waited in the
host's spool (the broker was unreachable), so the note says both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

SKEW: Final = 300  # seconds: more than this between host time and arrival is flagged


def offset(host_time: datetime, arrived: datetime) -> int:
    """Seconds the host's time is ahead of the arrival (negative: behind); naive is UTC."""
    if host_time.tzinfo is None:
        host_time = host_time.replace(tzinfo=UTC)
    return int((host_time - arrived).total_seconds())


def skewed(seconds: int) -> bool:
    return abs(seconds) > SKEW


def span(seconds: int) -> str:
    """``abs(seconds)`` in its two largest units: "3 d 4 h", "2 h 5 min", "7 min"."""
    left = abs(seconds)
    parts = []
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if left >= size:
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join(parts[:2]) or f"{left} s"


def describe(seconds: int) -> str:
    """One sentence for a mail: how far off, and which way."""
    if seconds > 0:
        return f"host clock off by {span(seconds)} (ahead of the arrival time)"
    return (
        f"host clock off by {span(seconds)} (behind the arrival time, or the event"
        " waited in the host's spool)"
    )


def utc(moment: datetime) -> datetime:
    """Reject naive datetimes early: every time in loginwatch is timezone-aware."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; pass an aware one (UTC)")
    return moment
