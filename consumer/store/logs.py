"""The sent log (check-before, record-after) and the decision log, as statements."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.decisions import Action, Decision
from consumer.store.backends import Statement

_DECISION: Final = """
INSERT INTO decision_log (event_id, recipient, action, reason, decided_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (event_id, recipient) DO UPDATE SET
    action = excluded.action, reason = excluded.reason, decided_at = excluded.decided_at
"""
# What record_decisions keeps: the actions that took an event out of someone's inbox.
LOGGED_ACTIONS: Final = frozenset({Action.SILENCED, Action.FOLDED, Action.BURST})

_WAS_SENT: Final = "SELECT 1 FROM delivery_log WHERE key = ?"
_RECORD_SENT: Final = (
    "INSERT INTO delivery_log (key, delivered_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
)


def was_sent_statement(key: str) -> Statement:
    """Reads a row when the mail with this key was sent (``Store.was_sent``)."""
    return _WAS_SENT, (key,)


def record_sent_statement(key: str, now: datetime) -> Statement:
    return _RECORD_SENT, (key, utc(now).timestamp())


def decision_statements(
    event_id: str, decisions: Iterable[Decision], now: datetime
) -> list[Statement]:
    """What ``Store.record_decisions`` writes."""
    stamp = utc(now).timestamp()
    return [
        (_DECISION, (event_id, d.recipient.lower(), d.action.value, d.reason, stamp))
        for d in decisions
        if d.recipient is not None and d.action in LOGGED_ACTIONS
    ]
