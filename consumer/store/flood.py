"""Flood counts: the SQL that counts a mail in its budgets, and the ledger that reads them.

A mail counts twice: in its host's budget (scope ``'host'``, the host lower-cased) and in
its kind's fleet budget (scope ``'fleet'``, host ``''``), per recipient and FLOOD_SLOT
seconds. ``FloodLedger`` holds the slots of some budgets as read from the store, and the
mails noted since, so a batch of events is decided on the counts ``Store.flood_state``
would read before each event, without a round trip per event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.core.decisions import Budget, FloodCount, PolicyState, flood_host
from consumer.store.backends import Row, Statement
from consumer.store.text import sql_text

# Flood counts are kept per budget and FLOOD_SLOT seconds: a count reads at most
# window / FLOOD_SLOT rows per recipient and budget however much mail went out. A window
# starts at the slot holding its start, so a mail up to FLOOD_SLOT seconds older may count.
FLOOD_SLOT: Final = 10
# Flood counts older than this are deleted when a mail is noted (flood windows are shorter).
FLOOD_KEEP: Final = 7 * 86400.0

_NOTE_MAIL: Final = """
INSERT INTO flood_budget (kind, scope, host, recipient, slot, sent, burst)
VALUES (?, ?, ?, ?, ?, 1, ?)
ON CONFLICT (kind, scope, host, recipient, slot) DO UPDATE SET
    sent = flood_budget.sent + 1,
    burst = CASE WHEN excluded.burst > flood_budget.burst
                 THEN excluded.burst ELSE flood_budget.burst END
"""

# The slots of one host's budgets for one kind, and that kind's fleet budgets.
_BUDGET_SLOTS: Final = """
SELECT recipient, scope, slot, sent, burst FROM flood_budget
WHERE kind = ? AND slot >= ?
  AND ((scope = 'host' AND host = ?) OR (scope = 'fleet' AND host = ''))
"""

# (kind, scope, host key as stored, recipient) → slot → [sent, burst]
_Slots = dict[tuple[str, str, str, str], dict[int, list[int]]]


def slot(stamp: float) -> int:
    return int(stamp // FLOOD_SLOT)


def note_statements(
    recipient: str, host: str, kind: str, now: datetime, burst: Budget | None
) -> list[Statement]:
    """Count one mail in both its budgets and prune old counts (``Store.note_mail``)."""
    stamp = utc(now).timestamp()
    at, who = slot(stamp), recipient.lower()
    return [
        (_NOTE_MAIL, (kind, "host", sql_text(flood_host(host)), who, at,
                      int(burst is Budget.HOST))),
        (_NOTE_MAIL, (kind, "fleet", "", who, at, int(burst is Budget.FLEET))),
        ("DELETE FROM flood_budget WHERE slot < ?", (slot(stamp - FLOOD_KEEP),)),
    ]  # fmt: skip


class FloodLedger:
    """The slots of the budgets of some (host, kind) pairs, read from the store (``read``
    and ``load``), plus the mails noted since (``note``); ``state`` sums them as
    ``Store.flood_state`` sums the store's rows.

    The ledger never counts more than the store holds: what other workers sent since the
    read is missing, so a decision that mails must be taken again on a fresh read.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._slots: _Slots = {}
        self._loaded: set[tuple[str, str]] = set()

    def read(self, host: str, kind: str, now: datetime) -> Statement:
        """The statement that reads what ``state(now', host, kind)`` needs for any
        ``now' >= now``; its rows go to ``load``."""
        first = slot(utc(now).timestamp() - self.window)
        return _BUDGET_SLOTS, (kind, first, sql_text(flood_host(host)))

    def load(self, host: str, kind: str, rows: Iterable[Row]) -> None:
        """Replace the slots of ``host``'s ``kind`` budgets and the fleet's with ``rows``."""
        key = sql_text(flood_host(host))
        for budget in ((kind, "host", key), (kind, "fleet", "")):
            for name in [n for n in self._slots if n[:3] == budget]:
                del self._slots[name]
        for recipient, scope, at, sent, burst in rows:
            name = (kind, str(scope), key if scope == "host" else "", str(recipient))
            self._slots.setdefault(name, {})[int(at)] = [int(sent), int(burst)]
        self._loaded.add((kind, key))

    def note(
        self, recipient: str, host: str, kind: str, now: datetime, burst: Budget | None
    ) -> None:
        """Count one mail that the store counted too (``note_statements``, committed)."""
        at, who = slot(utc(now).timestamp()), recipient.lower()
        key = sql_text(flood_host(host))
        for scope, where, flag in (("host", key, burst is Budget.HOST),
                                   ("fleet", "", burst is Budget.FLEET)):  # fmt: skip
            counts = self._slots.setdefault((kind, scope, where, who), {}).setdefault(at, [0, 0])
            counts[0] += 1
            counts[1] = max(counts[1], int(flag))

    def state(self, now: datetime, *, host: str, kind: str) -> PolicyState:
        """The counts an event of ``kind`` on ``host`` is decided by at ``now``.

        Raises:
            KeyError: that host's budgets were never loaded (a bug of the caller).
        """
        key = flood_host(host)
        if (kind, sql_text(key)) not in self._loaded:
            raise KeyError(f"flood budgets of {key!r} / {kind!r} were not read")
        first = slot(utc(now).timestamp() - self.window)
        hosts, fleet = {}, {}
        for (of, scope, where, recipient), slots in self._slots.items():
            if of != kind or (scope == "host" and where != sql_text(key)):
                continue
            counted = [c for at, c in slots.items() if at >= first]
            if not counted:
                continue
            flood = FloodCount(sent=sum(c[0] for c in counted),
                               burst_sent=any(c[1] for c in counted))  # fmt: skip
            if scope == "host":
                hosts[(recipient, key, kind)] = flood
            else:
                fleet[(recipient, kind)] = flood
        return PolicyState(hosts=hosts, fleet=fleet)
