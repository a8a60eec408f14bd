"""The pipeline's side of sending once (``channels.base.send_once``): the batch's sent log,
which also counts each notice in its flood budgets, and failed sends filed for the
settlement. Logins' alerts and system alerts both send this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from consumer.core import metrics
from consumer.core.decisions import Decision
from consumer.store import StoreBatch
from schemas.errors import PermanentSendError, StoreError, TransientSendError


class Ledger:
    """The batch's sent log as ``send_once`` asks it: recording a notice also counts it in
    the flood budgets of ``host`` and ``kind`` for its recipient, in the same commit
    (``StoreBatch.record_sent``)."""

    def __init__(self, work: StoreBatch, decision: Decision, *, host: str, kind: str) -> None:
        self.work, self.decision, self.host, self.kind = work, decision, host, kind

    def was_sent(self, key: str) -> bool:
        return self.work.was_sent(key)

    def record_sent(self, key: str, now: datetime) -> None:
        self.work.record_sent(key, now, recipient=self.decision.recipient or "",
                              host=self.host, kind=self.kind,
                              burst=self.decision.burst)  # fmt: skip


class Failures:
    """The failed sends of one event (or system alert), by kind, for its settlement."""

    def __init__(self) -> None:
        self.transient: list[str] = []
        self.permanent: list[str] = []

    @contextmanager
    def of(self, decision: Decision) -> Iterator[None]:
        """Whatever sending ``decision``'s notice raised, filed by kind."""
        try:
            yield
        except TransientSendError as exc:
            self.transient.append(f"{decision.recipient}: {exc}")
        except PermanentSendError as exc:
            self.permanent.append(f"{decision.recipient}: {exc}")
        except StoreError as exc:
            metrics.store_error()
            self.transient.append(f"store: {exc}")
