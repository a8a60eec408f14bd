"""The store's ``silence`` table (migration 9): silences and acks made at run time.

Same SQL on SQLite and PostgreSQL; every value is a parameter, matchers and recipients are
JSON lists. ``add`` refuses a rule without matchers and an operator's past
``SILENCES_PER_CREATOR`` open ones; ``expire`` ends one early (a config silence cannot be:
it is not in the table, and the file is its truth). Every method raises ``StoreError``
when the database fails.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Final

import msgspec

from consumer.core.clock import utc
from consumer.silences.rules import Rule, problem
from consumer.store.actions import SILENCES_PER_CREATOR
from consumer.store.backends import Database, Row
from schemas.errors import LoginwatchError

_COLUMNS: Final = (
    "id, kind, matchers, recipients, starts_at, ends_at, comment, created_by, created_at,"
    " expired_at, expired_by, event_id"
)
_INSERT: Final = f"INSERT INTO silence ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
# Open: not ended, not expired early (a rule that starts later is open too).
_OPEN: Final = "ends_at > ? AND (expired_at IS NULL OR expired_at > ?)"
_matchers = msgspec.json.Decoder(dict[str, tuple[str, ...]])
_names = msgspec.json.Decoder(tuple[str, ...])


class SilenceRefused(LoginwatchError):
    """A silence cannot be added or expired; the message says why (for the CLI and page)."""


class SilenceTable:
    """Silences and acks in the store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, rule: Rule) -> Rule:
        """Store ``rule`` under a new id (its own is ignored); the stored rule.

        Raises:
            SilenceRefused: no matcher, a bad network, an end before the start, or its
                creator has ``SILENCES_PER_CREATOR`` open silences already.
            StoreError: the database failed.
        """
        why = problem(rule)
        if why:
            raise SilenceRefused(why)
        stored = msgspec.structs.replace(rule, id=secrets.token_hex(6))
        now = stored.created_at or datetime.now(UTC)
        with self.db.transaction() as run:
            count = run(f"SELECT COUNT(*) FROM silence WHERE created_by = ? AND {_OPEN}",  # noqa: S608
                        (rule.created_by, _stamp(now), _stamp(now)))  # fmt: skip
            if int(count[0][0]) >= SILENCES_PER_CREATOR:
                raise SilenceRefused(
                    f"{rule.created_by} has {SILENCES_PER_CREATOR} open silences already:"
                    " expire some first"
                )
            run(_INSERT, _row(stored))
        return stored

    def open(self, now: datetime) -> list[Rule]:
        """Every silence and ack not ended and not expired at ``now``, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM silence WHERE {_OPEN} ORDER BY created_at, id"  # noqa: S608
        return [_rule(row) for row in self.db.execute(sql, (_stamp(now), _stamp(now)))]

    def during(self, start: datetime, end: datetime, limit: int) -> tuple[list[Rule], int]:
        """The rules in force at some time in ``[start, end)`` (a digest's window): the
        first ``limit`` by start, and how many there were."""
        where = "starts_at < ? AND ends_at > ? AND (expired_at IS NULL OR expired_at > ?)"
        params = (_stamp(end), _stamp(start), _stamp(start))
        count = self.db.execute(f"SELECT COUNT(*) FROM silence WHERE {where}", params)  # noqa: S608
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM silence WHERE {where} ORDER BY starts_at, id LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [_rule(row) for row in rows], int(count[0][0])

    def recent(self, now: datetime, limit: int) -> list[Rule]:
        """The open rules and those that ended within the last day, newest first."""
        since = _stamp(now) - 86400
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM silence WHERE ends_at > ?"  # noqa: S608
            " ORDER BY created_at DESC, id LIMIT ?",
            (since, limit),
        )
        return [_rule(row) for row in rows]

    def get(self, silence_id: str) -> Rule | None:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM silence WHERE id = ?", (silence_id,))  # noqa: S608
        return _rule(rows[0]) if rows else None

    def expire(self, silence_id: str, by: str, now: datetime) -> Rule:
        """End silence ``silence_id`` at ``now``; the rule as it now reads.

        Raises:
            SilenceRefused: no such silence (a config one: edit the file), or it ended.
            StoreError: the database failed.
        """
        if silence_id.startswith("config:"):
            raise SilenceRefused(
                f"{silence_id} is a [[silence]] of the config file: remove it there and"
                " restart the workers"
            )
        rows = self.db.execute(
            f"UPDATE silence SET expired_at = ?, expired_by = ? WHERE id = ? AND {_OPEN}"  # noqa: S608
            " RETURNING id",
            (_stamp(now), by, silence_id, _stamp(now), _stamp(now)),
        )
        if not rows:
            found = self.get(silence_id)
            if found is None:
                raise SilenceRefused(f"no silence {silence_id[:40]!r} (see `silence list`)")
            raise SilenceRefused(f"silence {silence_id} ended already")
        found = self.get(silence_id)
        assert found is not None
        return found


def _stamp(moment: datetime) -> float:
    return utc(moment).timestamp()


def _when(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(float(stamp), UTC)


def _row(rule: Rule) -> tuple[object, ...]:
    matchers = msgspec.json.encode(rule.matchers()).decode()
    created = rule.created_at or datetime.now(UTC)
    expired = None if rule.expired_at is None else _stamp(rule.expired_at)
    return (rule.id, rule.kind, matchers, msgspec.json.encode(rule.to).decode(),
            _stamp(rule.starts), _stamp(rule.ends), rule.comment, rule.created_by,
            _stamp(created), expired, rule.expired_by, rule.event_id)  # fmt: skip


def _rule(row: Row) -> Rule:
    (ident, kind, matchers, recipients, starts, ends, comment, by, created, expired,
     expired_by, event_id) = row  # fmt: skip
    found = _matchers.decode(str(matchers))
    started, ended = _when(starts), _when(ends)
    assert started is not None and ended is not None
    return Rule(
        id=str(ident),
        kind=str(kind),
        hosts=found.get("hosts", ()),
        users=found.get("users", ()),
        kinds=found.get("kinds", ()),
        sources=found.get("sources", ()),
        fingerprints=found.get("fingerprints", ()),
        services=found.get("services", ()),
        to=_names.decode(str(recipients)),
        starts=started,
        ends=ended,
        comment=str(comment),
        created_by=str(by),
        created_at=_when(created),
        expired_at=_when(expired),
        expired_by=str(expired_by),
        event_id=str(event_id),
    )
