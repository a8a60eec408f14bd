"""The store's work for one batch of events, in as few round trips as the guarantees allow.

The worker's pipeline thread takes the deliveries that wait (up to ``HAND_BACK_BATCH``) and
decides them in order, each exactly as it would be decided alone::

    work = store.batch(sightings, budgets, now=…, window=…, hosts=…)  # 1 round trip: the
                                                             #   hosts' rows, first-seen, flood
    for each event, in order:
        state = work.flood_state(now, host=…, kind=…)        # in memory: no round trip
        decide; if a decision mails:
            work.check(now, host=…, kind=…, keys=…)         # 1 round trip: queued writes,
            decide again on the fresh counts                 #   fresh budgets, the sent log
        work.log_decisions(event_id, decisions, now)         # queued
        per mail: work.was_sent(key) (answered by check), send,
                  work.record_sent(…)                        # 1 round trip, 1 commit
    work.flush()                                             # the queued decisions, if any

So an event that mails nobody costs no round trip of its own (its share of the first one,
and of the last when it logs a decision); one that mails costs two per mail, as few as
check-before and record-after allow: the sent log is read after the earlier mails of the
batch were recorded, and each mail is recorded in its own commit right after the SMTP
server accepted it. Sources two events of the batch share are new only to the first
(the sightings run in order in one transaction). Flood counts come from the ledger
(``flood.FloodLedger``): what the store held when the batch was read, plus the mails the
batch sent since; it misses what other workers sent meanwhile, which can only turn a mail
into a fold, so a decision that mails is taken again on counts read just before the mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from consumer.core.decisions import Budget, Decision, PolicyState
from consumer.core.enriched import FirstSeen
from consumer.store.backends import Database, Row, Statement
from consumer.store.first_seen import Sighting, observe
from consumer.store.flood import FloodLedger, note_statements
from consumer.store.hosts import HostReport, report_statements
from consumer.store.logs import decision_statements, record_sent_statement, was_sent_statement
from consumer.store.quota import HostQuota


class StoreBatch:
    """See the module docstring; every method raises ``StoreError`` when the database fails
    (the constructor too: then nothing of the batch was written)."""

    def __init__(
        self,
        db: Database,
        sightings: Sequence[Sighting],
        *,
        budgets: Iterable[tuple[str, str]],
        now: datetime,
        window: float,
        quota: HostQuota | None = None,
        hosts: Sequence[HostReport] = (),
        reads: Sequence[Statement] = (),
    ) -> None:
        """Note ``hosts`` (consumer/store/hosts.py), observe ``sightings`` in order (within
        each host's ``quota`` of new rows) and read the flood budgets of each ``(host, kind)``
        of ``budgets`` at ``now``, and the caller's ``reads`` (their rows: ``read``), in one
        transaction."""
        self.db = db
        self.ledger = FloodLedger(window)
        pairs = list(dict.fromkeys(budgets))
        flood = [self.ledger.read(host, kind, now) for host, kind in pairs]
        self.first_seen: list[FirstSeen]
        self.first_seen, rows = observe(
            db, sightings, before=report_statements(hosts), reads=[*flood, *reads], quota=quota
        )
        for (host, kind), read in zip(pairs, rows[: len(pairs)], strict=True):
            self.ledger.load(host, kind, read)
        # What the caller's reads found (the detections' state: consumer/alerts/detecting.py).
        self.read: list[list[Row]] = list(rows[len(pairs) : len(pairs) + len(reads)])
        self._pending: list[tuple[str, list[Statement]]] = []
        self._sent: dict[str, bool] = {}

    def flood_state(self, now: datetime, *, host: str, kind: str) -> PolicyState:
        """The counts ``Store.flood_state`` would read, as far as this batch knows them."""
        return self.ledger.state(now, host=host, kind=kind)

    def log_decisions(self, event_id: str, decisions: Iterable[Decision], now: datetime) -> None:
        """``Store.record_decisions``, written with the next round trip (``flush`` at last)."""
        if statements := decision_statements(event_id, decisions, now):
            self._pending.append((event_id, statements))

    def check(self, now: datetime, *, host: str, kind: str, keys: Iterable[str]) -> None:
        """Before a mail: commit the queued writes, read ``host``'s ``kind`` budgets again
        and which of ``keys`` the sent log holds (``was_sent``), in one round trip."""
        asked = list(dict.fromkeys(keys))
        reads = [self.ledger.read(host, kind, now), *(was_sent_statement(k) for k in asked)]
        rows = self._run(reads)
        self.ledger.load(host, kind, rows[0])
        self._sent.update((key, bool(found)) for key, found in zip(asked, rows[1:], strict=True))

    def was_sent(self, key: str) -> bool:
        """``Store.was_sent``: as ``check`` read it, or as this batch recorded it."""
        if key not in self._sent:
            self._sent[key] = bool(self._run([was_sent_statement(key)])[0])
        return self._sent[key]

    def record_sent(
        self,
        key: str,
        now: datetime,
        *,
        recipient: str,
        host: str,
        kind: str,
        burst: Budget | None,
    ) -> None:
        """After the SMTP server accepted a mail: ``Store.record_sent`` and
        ``Store.note_mail`` (and the queued writes) in one commit."""
        self._run([record_sent_statement(key, now),
                   *note_statements(recipient, host, kind, now, burst)])  # fmt: skip
        self._sent[key] = True
        self.ledger.note(recipient, host, kind, now, burst)

    def flush(self) -> None:
        """Write what is queued (the worker acks the batch only after this)."""
        if self._pending:
            self._run([])

    def unwritten(self) -> set[str]:
        """The events whose queued writes are not committed yet (after a failed ``flush``)."""
        return {event_id for event_id, _ in self._pending}

    def _run(self, statements: Sequence[Statement]) -> list[list[Row]]:
        queued = [s for _, each in self._pending for s in each]
        rows = self.db.batch([*queued, *statements])
        self._pending.clear()
        return list(rows[len(queued) :])
