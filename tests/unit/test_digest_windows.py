"""Digest window math: a pure function of the clock, checked against a table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumer.digest.windows import Schedule, Window, current, due, outside_hours, parts, window_at
from schemas.config import DigestConfig, Duration
from schemas.errors import ConfigError

BER = "Europe/Berlin"
IST = "Asia/Kolkata"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(every: str = "1d", at: str | None = None, tz: str = "UTC") -> Schedule:
    return Schedule.from_config(DigestConfig(every=Duration(every), at=at, timezone=tz))


@pytest.mark.parametrize(
    ("every", "at", "tz", "now", "bounds"),
    [
        ("1d", None, "UTC", "2026-11-26 12:00", ("2026-11-26 00:00", "2026-11-27 00:00")),
        ("1d", "07:00", "UTC", "2026-11-26 06:59", ("2026-11-25 07:00", "2026-11-26 07:00")),
        ("1d", "07:00", "UTC", "2026-11-26 07:00", ("2026-11-26 07:00", "2026-11-27 07:00")),
        # 07:00 Berlin is 06:00 UTC in winter, 05:00 UTC in summer.
        ("1d", "07:00", BER, "2026-11-26 12:00", ("2026-11-26 06:00", "2026-11-27 06:00")),
        ("1d", "07:00", BER, "2026-07-01 12:00", ("2026-07-01 05:00", "2026-07-02 05:00")),
        # Spring forward (29 Mar 2026): that day's window is 23 hours, still 07:00 local.
        ("1d", "07:00", BER, "2026-03-29 12:00", ("2026-03-29 05:00", "2026-03-30 05:00")),
        ("1d", "07:00", BER, "2026-03-29 03:00", ("2026-03-28 06:00", "2026-03-29 05:00")),
        # Fall back (25 Oct 2026): 25 hours.
        ("1d", "07:00", BER, "2026-10-25 03:00", ("2026-10-24 05:00", "2026-10-25 06:00")),
        ("1h", None, "UTC", "2026-11-26 12:34", ("2026-11-26 12:00", "2026-11-26 13:00")),
        # A half-hour zone: hours start at :30 UTC.
        ("1h", None, IST, "2026-11-26 12:34", ("2026-11-26 12:30", "2026-11-26 13:30")),
        ("6h", "07:00", "UTC", "2026-11-26 06:00", ("2026-11-26 01:00", "2026-11-26 07:00")),
        ("6h", "07:00", "UTC", "2026-11-26 23:00", ("2026-11-26 19:00", "2026-11-27 01:00")),
        # Weekly windows start on Mondays (2026-11-23 is a Monday).
        ("1w", "07:00", "UTC", "2026-11-26 12:00", ("2026-11-23 07:00", "2026-11-30 07:00")),
        ("1w", None, "UTC", "2026-11-23 00:00", ("2026-11-23 00:00", "2026-11-30 00:00")),
    ],
)  # fmt: skip
def test_window_at(every: str, at: str | None, tz: str, now: str, bounds: tuple[str, str]) -> None:
    window = window_at(schedule(every, at, tz), utc(now))
    assert (window.start, window.end) == (utc(bounds[0]), utc(bounds[1]))


@pytest.mark.parametrize(
    ("every", "tz", "message"),
    [
        ("7h", "UTC", "neither divides a day"),
        ("36h", "UTC", "neither divides a day"),
        ("1d", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_schedules_name_the_key(every: str, tz: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        schedule(every, None, tz)


def test_send_now_cuts_split_a_window() -> None:
    day = Window(utc("2026-11-26 00:00"), utc("2026-11-27 00:00"))
    cut = utc("2026-11-26 10:00")
    assert parts(day, [cut, utc("2026-11-20 00:00")]) == [
        Window(day.start, cut),
        Window(cut, day.end),
    ]
    assert current(schedule(), utc("2026-11-26 11:00"), [cut]) == Window(cut, day.end)


def test_due_lists_every_window_that_ended_since() -> None:
    hourly = schedule("1h")
    ended = due(hourly, utc("2026-11-26 03:10"), [utc("2026-11-26 01:30")],
                since=utc("2026-11-26 00:30"))  # fmt: skip
    assert [w.key for w in ended] == [
        "20261126T000000Z-20261126T010000Z",
        "20261126T010000Z-20261126T013000Z",
        "20261126T013000Z-20261126T020000Z",
        "20261126T020000Z-20261126T030000Z",
    ]
    assert due(hourly, utc("2026-11-26 03:10"), [], since=utc("2026-11-26 03:05")) == []


@pytest.mark.parametrize(
    ("window", "hours", "days", "outside"),
    [
        # A Thursday: before 08:00 and after 18:00.
        ((("2026-11-26 00:00", "2026-11-27 00:00")), "08:00-18:00", ("thu",),
         [(("2026-11-26 00:00", "2026-11-26 08:00")), ("2026-11-26 18:00", "2026-11-27 00:00")]),
        # Not a working day at all.
        ((("2026-11-26 00:00", "2026-11-27 00:00")), "08:00-18:00", ("mon",),
         [("2026-11-26 00:00", "2026-11-27 00:00")]),
        # A night shift spanning midnight.
        ((("2026-11-26 00:00", "2026-11-27 00:00")), "22:00-06:00", ("wed", "thu"),
         [("2026-11-26 06:00", "2026-11-26 22:00")]),
        # Entirely inside working hours.
        ((("2026-11-26 09:00", "2026-11-26 10:00")), "08:00-18:00", ("thu",), []),
    ],
)  # fmt: skip
def test_outside_working_hours(
    window: tuple[str, str], hours: str, days: tuple[str, ...], outside: list[tuple[str, str]]
) -> None:
    found = outside_hours(Window(utc(window[0]), utc(window[1])), schedule().zone, hours, days)
    assert found == [(utc(a), utc(b)) for a, b in outside]
