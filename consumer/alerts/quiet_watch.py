"""The worker's watch on quiet hosts: every ``[hosts] check_every``, the hosts that sent no event
and no heartbeat for ``[hosts] quiet_after`` (``consumer/detect/quiet.py``) each raise one
``host-quiet`` system alert, the way a flood's alert goes (``pipeline.raise_system``).

Every worker checks (the lane probes wake each one every few seconds, idle or not); the
alert's key names the host's last report, so the sent log lets one mail per recipient
through whoever raised it first, and the row is marked alerted once it went out, which
spares the others deciding it again. Its next report (an event, a heartbeat) clears the
mark: the next silence is a new alert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from consumer.alerts import pipeline
from consumer.alerts.pipeline import Stages
from consumer.core import metrics
from consumer.core.system import quiet_alert
from consumer.detect.quiet import to_alert
from schemas.config import Config
from schemas.errors import StoreError

log = logging.getLogger("loginwatch.worker")


class QuietWatch:
    """One worker's quiet-host checks (``check`` after each batch; it keeps its own pace)."""

    def __init__(self, config: Config, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.quiet_after = config.hosts.quiet_after.seconds
        self.every = config.hosts.check_every.seconds
        self.monotonic = monotonic
        self._next = 0.0

    def check(self, stages: Stages) -> int:
        """Raise the quiet hosts' alerts when a check is due; how many went out."""
        if self.monotonic() < self._next:
            return 0
        self._next = self.monotonic() + self.every
        now = stages.clock()
        try:
            states = stages.store.quiet_hosts(now - timedelta(seconds=self.quiet_after))
        except StoreError as exc:
            metrics.store_error()
            log.warning("quiet hosts not checked: %s", exc)
            return 0
        raised = 0
        for found in to_alert(states, now, self.quiet_after):
            alert = quiet_alert(found.name, found.since, stopped=found.stopped, why=found.why,
                                now=now)  # fmt: skip
            if pipeline.raise_system(stages, [alert]):
                continue  # not sent: the next check raises it again
            try:
                stages.store.quiet_alerted(found.name, now)
            except StoreError:
                metrics.store_error()  # raised again next time: the sent log holds it
            log.warning("host %r %s: no report since %s", found.name, found.how,
                        found.since.isoformat(timespec="seconds"))  # fmt: skip
            raised += 1
        return raised
