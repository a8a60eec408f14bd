"""The store's ``question`` and ``answer`` tables (migration 9).

A question is keyed by its login event's id, so a redelivered event finds its question
and asks nothing twice. An answer is keyed by the question and the id of the link that
gave it (``core/links.py``): each link answers once, a second POST of it is ``used``.
``answer`` records the answer, then applies ``decide.effect`` to every answer so far and
writes the verdict, in one transaction. Every method raises ``StoreError`` when the
database fails.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from consumer.core.clock import utc
from consumer.questions.decide import Effect, Given, effect
from consumer.store.backends import Database, Row
from consumer.store.text import sql_text
from schemas.errors import LinkError
from schemas.event import LoginEvent, Outcome, PamType

_COLUMNS: Final = (
    "id, host, username, client_ip, client_port, fingerprint, login_at, asked, asked_at,"
    " expires_at, verdict, flag, answered_at"
)


@dataclass(frozen=True)
class Question:
    """One "was this you?". ``host``, ``user`` and ``client_ip`` are the host's words."""

    id: str  # the login event's id (hex)
    host: str
    user: str
    client_ip: str
    client_port: int
    fingerprint: str
    login_at: datetime
    asked: str  # the address or receiver asked
    asked_at: datetime
    expires_at: datetime
    verdict: str = ""  # "", "yes", "no"
    flag: str = ""  # "", "likely-scanner"
    answered_at: datetime | None = None

    def as_event(self) -> LoginEvent:
        """The login as routes match it (for who hears an escalation)."""
        digest = b""
        if self.fingerprint.startswith("SHA256:"):
            text = self.fingerprint[7:]
            digest = base64.b64decode(text + "=" * (-len(text) % 4))
        return LoginEvent(id=bytes.fromhex(self.id), time=self.login_at, host=self.host,
                          user=self.user, client_ip=self.client_ip, client_port=self.client_port,
                          pam_type=PamType.OPEN_SESSION, outcome=Outcome.SUCCESS,
                          key_sha256=digest)  # fmt: skip


@dataclass(frozen=True)
class Answered:
    """What ``QuestionTable.answer`` did: the question as it now reads, and the effect."""

    question: Question
    effect: Effect


class QuestionTable:
    """Questions and answers in the store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ask(self, question: Question) -> Question:
        """Store ``question`` unless its login was asked about before; the stored one."""
        self.db.execute(
            f"INSERT INTO question ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            " ON CONFLICT (id) DO NOTHING",
            _row(question),
        )
        found = self.get(question.id)
        assert found is not None
        return found

    def get(self, question_id: str) -> Question | None:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM question WHERE id = ?", (question_id,))  # noqa: S608
        return _question(rows[0]) if rows else None

    def answer(
        self, question_id: str, token_id: str, given: Given, *, client: str, agent: str
    ) -> Answered:
        """Record ``given`` from the link ``token_id``, with the client and its user agent.

        Raises:
            LinkError: ``used`` (this link answered before) or ``forged`` (no such question).
            StoreError: the database failed.
        """
        with self.db.transaction() as run:
            rows = run(f"SELECT {_COLUMNS} FROM question WHERE id = ?", (question_id,))  # noqa: S608
            if not rows:
                raise LinkError("forged", "no such question")
            spent = run("SELECT 1 FROM answer WHERE question_id = ? AND token_id = ?",
                        (question_id, token_id))  # fmt: skip
            if spent:
                raise LinkError("used", "this link was used already")
            given_before = run("SELECT answer, at FROM answer WHERE question_id = ? ORDER BY at",
                               (question_id,))  # fmt: skip
            before = [Given(str(a), _moment(at)) for a, at in given_before]
            done = effect(before, given)
            stamp = utc(given.at).timestamp()
            run("INSERT INTO answer (question_id, token_id, answer, at, client, agent)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (question_id, token_id, given.answer, stamp, client[:200],
                 agent[:300]))  # fmt: skip
            run("UPDATE question SET verdict = ?, flag = ?, answered_at = ? WHERE id = ?",
                (done.verdict, done.flag, stamp, question_id))  # fmt: skip
            now_rows = run(f"SELECT {_COLUMNS} FROM question WHERE id = ?", (question_id,))  # noqa: S608
        return Answered(_question(now_rows[0]), done)

    def answers(self, question_id: str) -> list[tuple[str, datetime, str, str]]:
        """Every answer to a question: (answer, when, client, user agent), oldest first."""
        rows = self.db.execute(
            "SELECT answer, at, client, agent FROM answer WHERE question_id = ? ORDER BY at",
            (question_id,),
        )
        return [(str(a), _moment(at), str(c), str(g)) for a, at, c, g in rows]

    def unanswered(self, now: datetime, limit: int) -> list[Question]:
        """Questions nobody answered whose links still work, newest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM question WHERE verdict = '' AND expires_at > ?"  # noqa: S608
            " ORDER BY asked_at DESC LIMIT ?",
            (utc(now).timestamp(), limit),
        )
        return [_question(row) for row in rows]

    def asked_during(
        self, start: datetime, end: datetime, limit: int
    ) -> tuple[list[Question], int]:
        """Questions asked in ``[start, end)`` (a digest's window): the first ``limit``, and
        how many there were."""
        params = (utc(start).timestamp(), utc(end).timestamp())
        where = "asked_at >= ? AND asked_at < ?"
        count = self.db.execute(f"SELECT COUNT(*) FROM question WHERE {where}", params)  # noqa: S608
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM question WHERE {where} ORDER BY asked_at, id LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [_question(row) for row in rows], int(count[0][0])

    def unescalated(self, limit: int) -> list[Question]:
        """Questions answered "no" whose escalation has not all gone out yet, oldest first."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM question WHERE verdict = 'no' AND escalated_at IS NULL"  # noqa: S608
            " ORDER BY answered_at LIMIT ?",
            (limit,),
        )
        return [_question(row) for row in rows]

    def escalated(self, question_id: str, now: datetime) -> None:
        """Every recipient of the question's escalation got it."""
        self.db.execute("UPDATE question SET escalated_at = ? WHERE id = ?",
                        (utc(now).timestamp(), question_id))  # fmt: skip

    def answered_since(self, since: datetime, limit: int) -> list[Question]:
        """Questions answered since ``since``, newest first (what flags later alerts)."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM question WHERE verdict <> '' AND answered_at >= ?"  # noqa: S608
            " ORDER BY answered_at DESC LIMIT ?",
            (utc(since).timestamp(), limit),
        )
        return [_question(row) for row in rows]


def _moment(stamp: object) -> datetime:
    return datetime.fromtimestamp(float(str(stamp)), UTC)


def _row(q: Question) -> Sequence[object]:
    answered = None if q.answered_at is None else utc(q.answered_at).timestamp()
    return (q.id, sql_text(q.host), sql_text(q.user), sql_text(q.client_ip), q.client_port,
            q.fingerprint,
            utc(q.login_at).timestamp(), q.asked, utc(q.asked_at).timestamp(),
            utc(q.expires_at).timestamp(), q.verdict, q.flag, answered)  # fmt: skip


def _question(row: Row) -> Question:
    (ident, host, user, ip, port, fingerprint, login_at, asked, asked_at, expires_at, verdict,
     flag, answered_at) = row  # fmt: skip
    return Question(str(ident), str(host), str(user), str(ip), int(port), str(fingerprint),
                    _moment(login_at), str(asked), _moment(asked_at), _moment(expires_at),
                    str(verdict), str(flag),
                    None if answered_at is None else _moment(answered_at))  # fmt: skip
