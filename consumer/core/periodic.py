"""A value read again at a fixed interval, never used past it: what workers read from the store.

``Periodic(read, interval)`` calls ``read(now)`` the first time and whenever ``interval``
seconds (monotonic) have passed since the last good read. A read that raises leaves no
value behind: the error reaches the caller, and the next call reads again, so nothing is
ever decided on a value older than ``interval`` (the run-time silences: a failed read parks
the event instead).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class Periodic(Generic[T]):
    """``get(now)``: the value, read at most ``interval`` seconds ago."""

    def __init__(
        self,
        read: Callable[[datetime], T],
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.interval = interval
        self._monotonic = monotonic
        self._value: T | None = None
        self._at: float | None = None

    def get(self, now: datetime) -> T:
        """The value; read now when the last good read is ``interval`` old, or failed.

        Raises:
            whatever ``read`` raises (and the value is forgotten).
        """
        tick = self._monotonic()
        if self._value is None or self._at is None or tick - self._at >= self.interval:
            self._value, self._at = None, None
            self._value = self._read(now)
            self._at = tick
        return self._value
