"""Digest windows: pure functions of an injected ``now`` (architecture.md #8).

A schedule is ``[digest] every`` (a divisor of a day — "1h", "6h" — or whole days — "1d",
"1w"), an optional ``at`` ("07:00") and a time zone. Boundaries are *local wall-clock*
times: a daily digest at 07:00 Europe/Berlin stays at 07:00 across daylight-saving changes
(that day's window is 23 or 25 hours long). Sub-day windows restart at every local
midnight + ``at``; multi-day windows start on days whose ordinal is a multiple of the
length (so "1w" starts on Mondays). ``--send-now`` cuts a window early: the cut times split
the natural window into consecutive parts, each sent on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.config import DigestConfig
from schemas.errors import ConfigError

DAY = 86400
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Schedule:
    """A validated ``[digest]`` schedule."""

    every: int  # seconds
    at: time
    zone: ZoneInfo
    label: str  # the configured "1d", for window keys

    @classmethod
    def from_config(cls, config: DigestConfig) -> Schedule:
        """Raises:
        ConfigError: an ``every`` that neither divides a day nor is whole days, or an
            unknown time zone.
        """
        every = int(config.every.seconds)
        if every <= 0 or (every < DAY and DAY % every) or (every > DAY and every % DAY):
            raise ConfigError(
                f"$.digest.every: {config.every} neither divides a day nor is whole days"
            )
        try:
            zone = ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"$.digest.timezone: unknown time zone {config.timezone!r}") from None
        return cls(every, _clock(config.at or "00:00"), zone, config.every.text)


@dataclass(frozen=True, order=True)
class Window:
    """``[start, end)``, both aware UTC datetimes."""

    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """Stable and unique: the store's window key and part of the Message-ID."""
        return f"{_stamp(self.start)}-{_stamp(self.end)}"

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # fold=0: an ambiguous wall time is its first occurrence; a nonexistent one (spring
    # forward) maps past the gap — both stay monotonic over consecutive days.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _boundaries(schedule: Schedule, around: datetime) -> list[datetime]:
    """Every boundary on the local days around ``around`` (enough to bracket it)."""
    today = around.astimezone(schedule.zone).date()
    days = max(1, schedule.every // DAY)
    found: set[datetime] = set()
    for offset in range(-days - 1, days + 2):
        day = today + timedelta(days=offset)
        if schedule.every >= DAY:
            if day.toordinal() % days == 1 % days:  # ordinal 1 is a Monday
                found.add(_local(day, schedule.at, schedule.zone))
            continue
        first = (schedule.at.hour * 3600 + schedule.at.minute * 60) % schedule.every
        for start in range(first, DAY, schedule.every):
            clock = time(start // 3600, start // 60 % 60, start % 60)
            found.add(_local(day, clock, schedule.zone))
    return sorted(found)


def window_at(schedule: Schedule, moment: datetime) -> Window:
    """The natural window containing ``moment`` (aware).

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    bounds = _boundaries(schedule, moment)
    start = max(b for b in bounds if b <= moment)
    end = min(b for b in bounds if b > moment)
    return Window(start, end)


def parts(window: Window, cuts: Iterable[datetime]) -> list[Window]:
    """``window`` split at the ``--send-now`` cuts that fall inside it, in order."""
    inner = sorted({c for c in cuts if window.start < c < window.end})
    edges = [window.start, *inner, window.end]
    return [Window(a, b) for a, b in pairwise(edges)]


def due(
    schedule: Schedule, now: datetime, cuts: Iterable[datetime], since: datetime
) -> list[Window]:
    """The windows (parts) that ended in ``[since, now]``: what the scheduler must send.

    ``since`` bounds the look-back (the scheduler passes ``now`` minus a few windows, so a
    scheduler that was down for a while still sends what it missed, and no more).
    """
    cuts = list(cuts)
    found: list[Window] = []
    cursor = window_at(schedule, since)
    while cursor.start <= now:
        found.extend(p for p in parts(cursor, cuts) if since <= p.end <= now)
        cursor = window_at(schedule, cursor.end)
    return found


def current(schedule: Schedule, now: datetime, cuts: Iterable[datetime]) -> Window:
    """The part of the window containing ``now`` that is still collecting events."""
    return next(p for p in parts(window_at(schedule, now), cuts) if p.contains(now))


def _clock(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def outside_hours(
    window: Window, zone: ZoneInfo, hours: str, days: tuple[str, ...]
) -> list[tuple[datetime, datetime]]:
    """The stretches of ``window`` outside working hours ("08:00-18:00") and days, in UTC.

    A range whose end is before its start ("22:00-06:00") spans midnight.
    """
    begin, finish = (_clock(part) for part in hours.split("-"))
    first = window.start.astimezone(zone).date() - timedelta(days=1)
    last = window.end.astimezone(zone).date() + timedelta(days=1)
    working: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        if _WEEKDAYS[day.weekday()] in days:
            stop_day = day if finish > begin else day + timedelta(days=1)
            working.append((_local(day, begin, zone), _local(stop_day, finish, zone)))
        day += timedelta(days=1)
    outside: list[tuple[datetime, datetime]] = []
    cursor = window.start
    for start, stop in sorted(working):
        if stop <= cursor or start >= window.end:
            continue
        if start > cursor:
            outside.append((cursor, start))
        cursor = max(cursor, stop)
    if cursor < window.end:
        outside.append((cursor, window.end))
    return outside
