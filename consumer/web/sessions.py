"""Operators' sessions and the single-use nonces every form carries, in the store.

A session is made only by a good sign-in (a POST): its cookie holds 32 random bytes, the
store holds their SHA-256, the operator's name, a CSRF token and when it ends (``[web]
session_for``, never extended). Reading one (every GET) writes nothing. An operator keeps
at most ``SESSIONS_PER_OPERATOR`` live sessions; the oldest goes first.

A nonce is signed, not stored, when a page shows its form: ``random.expiry.MAC`` over its
purpose and what it is bound to (a link's id, a session). Its POST *spends* it: the
nonce goes into ``web_nonce`` (unique), so a second POST of the same form is refused, and
the row is forgotten once the nonce would have expired anyway. So a GET, however often a
scanner sends it, adds no row; only a POST does, once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from consumer.core.clock import utc
from consumer.store.actions import SESSIONS_PER_OPERATOR
from consumer.store.backends import Database
from schemas.errors import LinkError

NONCE_FOR: Final = timedelta(hours=2)


@dataclass(frozen=True)
class Operator:
    """Who is signed in, and the CSRF token every POST of theirs must carry. ``cookie``:
    the session's cookie value ("" when a trusted proxy named them)."""

    name: str
    csrf: str
    cookie: str = ""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Sessions:
    """Sessions in ``web_session``; every method raises ``StoreError`` on a store failure."""

    def __init__(self, db: Database, lasting: timedelta) -> None:
        self.db = db
        self.lasting = lasting

    def create(self, name: str, client: str, now: datetime) -> Operator:
        """A new session for ``name`` (the oldest beyond the cap of this operator ends)."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        stamp = utc(now).timestamp()
        with self.db.transaction() as run:
            run("INSERT INTO web_session (id_hash, operator, csrf, created_at, expires_at, client)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_digest(cookie), name, csrf, stamp, stamp + self.lasting.total_seconds(),
                 client[:100]))  # fmt: skip
            live = run("SELECT id_hash FROM web_session WHERE operator = ? AND expires_at > ?"
                       " ORDER BY created_at DESC", (name, stamp))  # fmt: skip
            for (old,) in live[SESSIONS_PER_OPERATOR:]:
                run("DELETE FROM web_session WHERE id_hash = ?", (old,))
        return Operator(name, csrf, cookie)

    def get(self, cookie: str | None, now: datetime) -> Operator | None:
        """The operator of a live session (None: no cookie, unknown or ended); reads only."""
        if not cookie or len(cookie) > 100:
            return None
        rows = self.db.execute(
            "SELECT operator, csrf FROM web_session WHERE id_hash = ? AND expires_at > ?",
            (_digest(cookie), utc(now).timestamp()),
        )
        return Operator(str(rows[0][0]), str(rows[0][1]), cookie) if rows else None

    def end(self, cookie: str) -> None:
        self.db.execute("DELETE FROM web_session WHERE id_hash = ?", (_digest(cookie),))


class Nonces:
    """Signed single-use nonces (see the module docstring)."""

    def __init__(self, db: Database, key: str) -> None:
        self.db = db
        self._key = hashlib.sha256(b"loginwatch.nonce\0" + key.encode()).digest()

    def issue(self, purpose: str, bound: str, now: datetime) -> str:
        """A nonce for a form of ``purpose`` bound to ``bound``, good for ``NONCE_FOR``."""
        value = secrets.token_urlsafe(16)
        expires = int((utc(now) + NONCE_FOR).timestamp())
        return f"{value}.{expires}.{self._mac(value, expires, purpose, bound)}"

    def spend(self, nonce: str, purpose: str, bound: str, now: datetime) -> None:
        """Check ``nonce`` and spend it.

        Raises:
            LinkError: ``forged`` (not ours, or for another form), ``expired``, or ``used``.
            StoreError: the store failed.
        """
        value, _, rest = nonce.partition(".")
        expiry, _, mac = rest.partition(".")
        if not value or not expiry.isdigit() or len(nonce) > 200:
            raise LinkError("forged", "the form's nonce is malformed")
        if not hmac.compare_digest(mac, self._mac(value, int(expiry), purpose, bound)):
            raise LinkError("forged", "the form's nonce is not ours")
        if utc(now).timestamp() >= int(expiry):
            raise LinkError("expired", "the form has expired: load the page again")
        spent = self.db.execute(
            "INSERT INTO web_nonce (nonce, purpose, used_at, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
            (value, purpose, utc(now).timestamp(), float(expiry)),
        )
        if not spent:
            raise LinkError("used", "this form was sent already")

    def spend_link(self, link_id: str, expires: int, now: datetime) -> None:
        """Spend a link's id (a silence link makes one silence).

        Raises:
            LinkError: ``used``. StoreError: the store failed.
        """
        spent = self.db.execute(
            "INSERT INTO web_nonce (nonce, purpose, used_at, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
            (f"link:{link_id}", "link", utc(now).timestamp(), float(expires)),
        )
        if not spent:
            raise LinkError("used", "this link was used already")

    def link_spent(self, link_id: str) -> bool:
        return bool(
            self.db.execute("SELECT 1 FROM web_nonce WHERE nonce = ?", (f"link:{link_id}",))
        )

    def _mac(self, value: str, expires: int, purpose: str, bound: str) -> str:
        message = f"{value}\0{expires}\0{purpose}\0{bound}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


def proxy_csrf(key: str, name: str) -> str:
    """A proxy-signed-in operator's CSRF token (no session row): derived from the key."""
    return hmac.new(key.encode(), b"loginwatch.csrf\0" + name.encode(), hashlib.sha256).hexdigest()
