"""Who is signing in: a password file of scrypt hashes, or a trusted reverse proxy's header.

The password file (``[web] password_file``, 0600, read with ``schemas.files``) holds one
``NAME:scrypt$N$r$p$SALT$HASH`` line per operator (``loginwatch web passwd NAME`` writes
it). scrypt with N=2^15, r=8, p=1 costs about 32 MiB and a tenth of a second a try, so a
stolen file is slow to guess; a name that is not in the file still costs a hash, so the
time of an answer does not tell which names exist.

A reverse proxy may sign people in by naming them in ``[web] proxy_header``. That header
is trusted only where nobody else can send it: on the unix socket (whose mode and group
``loginwatch web`` sets before it listens), or over TCP when the request also carries
``X-Loginwatch-Proxy-Secret`` equal to the secret of ``[web] proxy_secret_file``. Never
on a loopback TCP port alone: every local user can reach it.

``Throttle`` rate-limits failed sign-ins per name (in the store, shared by every process)
and per client address (in memory, bounded): past ``[web] max_failed_logins`` within
``WINDOW_S`` the next try waits until the window has room.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from consumer.core.clock import utc
from consumer.store.backends import Database
from schemas.errors import ConfigError
from schemas.files import read_secret, read_secret_lines

N: Final = 2**15
R: Final = 8
P: Final = 1
MAXMEM: Final = 64 * 1024 * 1024
WINDOW_S: Final = 900.0
ADDRESSES: Final = 10_000  # client addresses remembered (oldest forgotten first)
NAME: Final = re.compile(r"[A-Za-z0-9._@-]{1,64}")
PROXY_SECRET_HEADER: Final = "x-loginwatch-proxy-secret"  # noqa: S105 - a header name
# Compared against when the name is unknown, so that both cost one scrypt.
_DUMMY: Final = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


def hash_password(password: str, *, n: int = N) -> str:
    """``scrypt$N$r$p$SALT$HASH`` for ``password`` (a fresh salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=R, p=P, maxmem=MAXMEM)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(digest)}"


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (``hash_password``'s form); constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        wanted = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=MAXMEM, dklen=len(wanted))  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, wanted)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def read_passwords(path: str) -> dict[str, str]:
    """NAME → hash from the password file.

    Raises:
        ConfigError: the file is missing, too open, or a line is not ``NAME:HASH``.
    """
    found: dict[str, str] = {}
    for number, line in enumerate(read_secret_lines(path, "$.web.password_file"), start=1):
        name, sep, stored = line.partition(":")
        if not sep or not NAME.fullmatch(name) or not stored.startswith("scrypt$"):
            raise ConfigError(f"$.web.password_file: {path} line {number} is not NAME:scrypt$…"
                              " (write it with `loginwatch web passwd NAME`)")  # fmt: skip
        found[name] = stored
    return found


def verify(passwords: dict[str, str], name: str, password: str) -> bool:
    """Whether ``name`` signs in with ``password``; an unknown name costs the same."""
    stored = passwords.get(name)
    ok = check_password(stored or _DUMMY, password)
    return ok and stored is not None


def proxy_secret(path: str | None) -> str | None:
    """The proxy's shared secret (``[web] proxy_secret_file``), or None.

    Raises:
        ConfigError: the file is missing, too open or empty.
    """
    if path is None:
        return None
    secret = read_secret(path, "$.web.proxy_secret_file")
    if len(secret) < 32:
        raise ConfigError("$.web.proxy_secret_file: the secret is shorter than 32 characters")
    return secret


def proxy_trusted(*, unix: bool, secret: str | None, sent: str | None) -> bool:
    """Whether a request's proxy header may be believed: it came over the unix socket, or it
    carries the shared secret (compared in constant time)."""
    if unix:
        return True
    if secret is None or sent is None:
        return False
    return hmac.compare_digest(secret.encode(), sent.encode())


@dataclass(frozen=True)
class Verdict:
    """May this sign-in be tried; if not, how many seconds until it may."""

    allowed: bool
    wait: int = 0


class Throttle:
    """Failed sign-ins per name (store: ``web_operator``) and per address (memory)."""

    def __init__(self, db: Database, limit: int) -> None:
        self.db = db
        self.limit = limit
        self._addresses: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def check(self, name: str, address: str, now: datetime) -> Verdict:
        """Whether a sign-in as ``name`` from ``address`` may be tried at ``now``.

        Raises:
            StoreError: the store failed.
        """
        stamp = utc(now).timestamp()
        waits = [self._wait(self._addresses.get(address), stamp)]
        rows = self.db.execute("SELECT failures, failed_at FROM web_operator WHERE name = ?",
                               (name,))  # fmt: skip
        if rows:
            waits.append(self._wait((int(rows[0][0]), float(rows[0][1])), stamp))
        wait = max(waits)
        return Verdict(wait == 0, wait)

    def _wait(self, entry: tuple[int, float] | None, stamp: float) -> int:
        if entry is None:
            return 0
        failures, since = entry
        if failures < self.limit or stamp - since >= WINDOW_S:
            return 0
        return int(WINDOW_S - (stamp - since)) + 1

    def failed(self, name: str, address: str, now: datetime, *, known: bool) -> None:
        """Count a failed sign-in (``known``: the name is an operator's, so the store keeps
        a row for it; a stranger's names never add rows).

        Raises:
            StoreError: the store failed.
        """
        stamp = utc(now).timestamp()
        failures, since = self._addresses.pop(address, (0, stamp))
        if stamp - since >= WINDOW_S:
            failures, since = 0, stamp
        self._addresses[address] = (failures + 1, since)
        while len(self._addresses) > ADDRESSES:
            self._addresses.popitem(last=False)
        if known:
            self.db.execute(
                "INSERT INTO web_operator (name, failures, failed_at, seen_at)"
                " VALUES (?, 1, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " failures = CASE WHEN web_operator.failed_at < ? THEN 1"
                " ELSE web_operator.failures + 1 END,"
                " failed_at = CASE WHEN web_operator.failed_at < ? THEN excluded.failed_at"
                " ELSE web_operator.failed_at END, seen_at = excluded.seen_at",
                (name, stamp, stamp, stamp - WINDOW_S, stamp - WINDOW_S),
            )

    def succeeded(self, name: str, address: str, now: datetime) -> None:
        """A good sign-in clears the name's and the address's failures.

        Raises:
            StoreError: the store failed.
        """
        stamp = utc(now).timestamp()
        self._addresses.pop(address, None)
        self.db.execute(
            "INSERT INTO web_operator (name, failures, failed_at, signed_in_at, seen_at)"
            " VALUES (?, 0, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET failures = 0,"
            " signed_in_at = excluded.signed_in_at, seen_at = excluded.seen_at",
            (name, stamp, stamp, stamp),
        )
