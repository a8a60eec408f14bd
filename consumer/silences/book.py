"""What a worker decides with: the config's silences and the store's, read at an interval.

``SilenceBook.rules(now)`` gives the ``[[silence]]`` rules of the config followed by every
open silence and ack of the store, read again once ``[worker] silence_interval`` (at most
5 s) has passed, so a silence made on any machine reaches every worker within it, without a
restart. A failed read raises ``StoreError`` and leaves nothing behind: the pipeline parks
the event, it never decides without the silences (``core/periodic.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from consumer.core.periodic import Periodic
from consumer.silences.rules import Rule, from_config
from consumer.silences.table import SilenceTable
from schemas.config import Config


class SilenceBook:
    """The rules every decision of one worker thread matches against."""

    def __init__(
        self,
        table: SilenceTable,
        config: Config,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configured = tuple(from_config(i, s) for i, s in enumerate(config.silence))
        self.table = table
        self._periodic = Periodic(self._read, config.worker.silence_interval.seconds, monotonic)

    def rules(self, now: datetime) -> tuple[Rule, ...]:
        """The config's rules, then the store's open ones, as read at most an interval ago.

        Raises:
            StoreError: the read failed (decide nothing; try again later).
        """
        return self._periodic.get(now)

    def _read(self, now: datetime) -> tuple[Rule, ...]:
        return (*self.configured, *self.table.open(now))
