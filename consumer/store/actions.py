"""The bounds of the tables that acting on alerts adds (migration 9): a keep time per table,
a cap per speaker where a speaker can create rows.

- ``silence``: made by an operator (CLI, web page); kept ``[store] keep`` after its end;
  at most ``SILENCES_PER_CREATOR`` open per operator.
- ``question``: made by the worker for a login; kept ``[store] keep`` after it was asked;
  at most ``[notify_user] flood_max`` per address within the flood window.
- ``answer``: a user's click; kept ``[store] keep``; two per question (one per link).
- ``web_nonce``: a POST; kept until it expires; one per form or link.
- ``web_session``: a sign-in; kept until it expires; ``SESSIONS_PER_OPERATOR`` live each.
- ``web_operator``: a sign-in attempt for a known name; kept ``[store] keep`` after it was
  last seen; one per name.

``prune_actions`` forgets what is past its keep time, in the bounded batches of
``retention.prune_table``. The digest scheduler runs it with the rest of the store's
retention, and ``loginwatch web`` (the writer of the last three) every hour.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.store.backends import Database
from consumer.store.retention import prune_table

SILENCES_PER_CREATOR: Final = 500
SESSIONS_PER_OPERATOR: Final = 20
# (table, time column, kept for [store] keep after that time (True) or until it (False)).
RETENTION: Final = (
    ("silence", "ends_at", True),
    ("question", "asked_at", True),
    ("answer", "at", True),
    ("web_nonce", "expires_at", False),
    ("web_session", "expires_at", False),
    ("web_operator", "seen_at", True),
)


def prune_actions(db: Database, *, before: datetime, now: datetime) -> dict[str, int]:
    """Delete rows kept past ``before`` (``now - [store] keep``) or expired at ``now``, in
    bounded batches; how many went, per table (names and columns are ours, never input).

    Raises:
        StoreError: the database failed (what went before stays gone).
    """
    return {
        table: prune_table(db, table, column, utc(before if kept else now).timestamp())
        for table, column, kept in RETENTION
    }
