"""System alerts on their way out: decided by the policy, rendered, sent once.

``decide_and_send`` is what a login's own alert gets, for a ``SystemAlert``
(``consumer/core/system.py``): ``Policy.decide_system`` on the flood counts of its own
kind, read again before a notice as an event's are, then ``channels.base.send_once`` per
decision that sends, to an address (the ``system.*`` mail) or a receiver alike, with the
alert's own sent-log key, so a redelivered event or a second worker that noticed the same
flood never sends it twice. The pipeline calls it for ``login-dropped`` inside an
event's decision; ``raise_all`` serves the alerts the worker raises itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

from consumer.alerts.sending import Failures, Ledger
from consumer.channels.base import Channel, send_once
from consumer.core import metrics
from consumer.core.decisions import MAILING
from consumer.core.system import SystemAlert, sent_key
from consumer.silences.rules import Rule
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Store, StoreBatch
from schemas.errors import StoreError
from schemas.receivers import reference

log = logging.getLogger("loginwatch.worker")


def decide_and_send(
    work: StoreBatch,
    alert: SystemAlert,
    failed: Failures,
    *,
    policy: Policy,
    renderer: Renderer,
    channel: Channel,
    now: datetime,
    arrived: datetime | None = None,
    silences: Sequence[Rule] | None = None,
) -> None:
    """Decide ``alert`` and send each of its notices once; what fails goes to ``failed``.
    ``arrived``: when what raised it reached this worker (latency counts from there; None:
    it was raised ``now``); ``silences``: the config's and the store's in force (None: the
    config's alone).
    ``work`` must have read the budgets of ``(alert.host, alert.kind)``."""
    metrics.system_alert(alert.kind)
    try:
        state = work.flood_state(now, host=alert.host, kind=alert.kind)
        decisions = policy.decide_system(alert, state, now, silences=silences)
        if mailing := [d for d in decisions if d.action in MAILING]:
            keys = [sent_key(alert, d.recipient or "") for d in mailing]
            work.check(now, host=alert.host, kind=alert.kind, keys=keys)
            state = work.flood_state(now, host=alert.host, kind=alert.kind)
            decisions = policy.decide_system(alert, state, now, silences=silences)
    except StoreError as exc:
        metrics.store_error()
        failed.transient.append(f"store: {exc}")
        return
    for decision in decisions:
        if decision.action not in MAILING or decision.recipient is None:
            log.info("%s %s %s: %s", alert.key, decision.action.value,
                     decision.recipient or "-", decision.reason)  # fmt: skip
            continue
        key = sent_key(alert, decision.recipient)
        with failed.of(decision):
            ledger = Ledger(work, decision, host=alert.host, kind=alert.kind)
            sent = send_once(
                ledger, channel, key, partial(renderer.system_notice, alert, decision, key), now
            )
            action, to = decision.action.value, decision.recipient
            if not sent:
                log.info("%s %s %s: already sent (redelivery)", alert.key, action, to)
                continue
            if reference(to) is None:
                metrics.mail_sent((arrived or now).timestamp(), datetime.now(UTC).timestamp())
            log.info("%s %s %s: sent; %s", alert.key, action, to, decision.reason)


def raise_all(
    store: Store,
    alerts: Sequence[SystemAlert],
    *,
    policy: Policy,
    renderer: Renderer,
    channel: Channel,
    now: datetime,
    silences: Sequence[Rule] | None = None,
) -> list[SystemAlert]:
    """Decide and send ``alerts``; returns those to raise again later (a transient
    failure: SMTP, the store). Never raises for a failed send."""
    again = []
    for alert in alerts:
        failed = Failures()
        try:
            work = store.batch([], budgets=[(alert.host, alert.kind)], now=now,
                               window=policy.flood_window)  # fmt: skip
            decide_and_send(work, alert, failed, policy=policy, renderer=renderer,
                            channel=channel, now=now, silences=silences)  # fmt: skip
            work.flush()
        except StoreError as exc:
            metrics.store_error()
            failed.transient.append(f"store: {exc}")
        if failed.transient:
            log.warning("%s: not sent yet, tried again later: %s", alert.key,
                        "; ".join(failed.transient))  # fmt: skip
            again.append(alert)
        for reason in failed.permanent:
            log.error("%s: not sent: %s", alert.key, reason)
    return again
