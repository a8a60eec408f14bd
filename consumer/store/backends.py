"""The two databases behind the store, behind one small interface.

SQL is written once with ``?`` placeholders; the PostgreSQL side turns them into ``%s``, so
a literal ``?`` or ``%`` (or PostgreSQL's jsonb ``?`` operator) must not appear in shared SQL:
pass such values as parameters.
Each backend owns one connection guarded by a lock, so one ``Store`` can be shared by the
threads of a worker. sqlite3 and psycopg errors are wrapped here into ``StoreError``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from schemas.config import is_postgres
from schemas.errors import StoreError
from schemas.transport import is_loopback, postgres_hosts

Row = tuple[Any, ...]
Run = Callable[[str, Sequence[object]], list[Row]]
# One statement of a batch: its SQL (``?`` placeholders) and its parameters.
Statement = tuple[str, Sequence[object]]


class Database(Protocol):
    dialect: str

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Run one statement in its own transaction.

        Raises:
            StoreError: the database failed.
        """
        ...

    def transaction(self) -> AbstractContextManager[Run]:
        """A transaction: the yielded function runs statements inside it."""
        ...

    def batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Run ``statements`` in order in one transaction; the rows of each.

        On PostgreSQL the whole batch is one round trip (pipeline mode): a statement may
        not depend on an earlier one's rows, only on its writes.

        Raises:
            StoreError: the database failed (nothing of the batch was written).
        """
        ...

    def close(self) -> None: ...


@contextmanager
def _wrapped(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, psycopg.Error) as exc:
        raise StoreError(f"{what}: {type(exc).__name__}: {exc}".strip()) from exc


class SqliteDatabase:
    """A SQLite file in WAL mode: readers never block the writer, several processes share it."""

    dialect = "sqlite"

    def __init__(self, path: str, durable: bool = False) -> None:
        if path != ":memory:":
            prepare_file(Path(path))
        with _wrapped(f"cannot open SQLite store {path} ($.store.url)"):
            # isolation_level=None: autocommit, and we say BEGIN IMMEDIATE ourselves so a
            # write transaction takes the lock up front instead of failing halfway.
            self._conn = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._wal()
            # In WAL mode, NORMAL stays consistent and survives a crash of the process;
            # only an OS crash or power loss can drop the last commits — for the worker
            # at worst a second mail or a repeated first-seen marker, while FULL (an
            # fsync per commit) cost it three quarters of its throughput. A store that
            # acks broker messages after its commit (the digest's) must be `durable`.
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._lock = threading.Lock()
        self.path = path

    def _wal(self) -> None:
        """Switch to WAL; two processes opening a new store at once may see it locked
        (the switch takes an exclusive lock that the busy timeout does not cover)."""
        for attempt in range(50):
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock, _wrapped("SQLite store"):
            return self._run(sql, params)

    def _run(self, sql: str, params: Sequence[object]) -> list[Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except OverflowError as exc:  # an int beyond 64 bits: sqlite3 raises it on binding
            raise StoreError(f"SQLite store: a value does not fit: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Run]:
        def run(sql: str, params: Sequence[object] = ()) -> list[Row]:
            return self._run(sql, params)

        with self._lock, _wrapped("SQLite store"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield run
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        with self.transaction() as run:
            return [run(sql, params) for sql, params in statements]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_IDLE = TransactionStatus.IDLE


# libpq 16 added require_auth: the client refuses any authentication but this one, so no
# server (or man in the middle) can ask for the password in clear text or md5.
REQUIRE_AUTH_LIBPQ: Final = 160000


def tls_options(url: str, ca_file: str | None, libpq: int) -> dict[str, str]:
    """What libpq is told beside the URL (the URL's own settings win): ``sslrootcert`` from
    ``[store] ca_file``, and then ``sslmode=verify-full`` unless the URL names a mode;
    ``require_auth=scram-sha-256`` for a server off this machine, where ``libpq`` (its
    version number, ``psycopg.pq.version()``) knows it."""
    query = parse_qs(urlsplit(url).query)
    options: dict[str, str] = {}
    if ca_file is not None and "sslrootcert" not in query:
        options["sslrootcert"] = ca_file
    if ca_file is not None and "sslmode" not in query:
        options["sslmode"] = "verify-full"
    remote = any(not (h.startswith(("/", "@")) or is_loopback(h)) for h, _ in postgres_hosts(url))
    if remote and libpq >= REQUIRE_AUTH_LIBPQ and "require_auth" not in query:
        options["require_auth"] = "scram-sha-256"
    return options


class PostgresDatabase:
    """A PostgreSQL database shared by workers on several machines; reconnects when broken."""

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        connect_timeout: int = 10,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._url = url
        self._timeout = connect_timeout
        # From [store] password_file: handed to libpq as a keyword (None: none), never put
        # into the URL, which messages may show.
        self._password = password
        self._options = tls_options(url, ca_file, psycopg.pq.version())
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Row] | None = None
        hint = " (password from $.store.password_file)" if password is not None else ""
        with self._lock, _wrapped(f"cannot connect to the PostgreSQL store{hint}"):
            self._connection()

    def _connection(self) -> psycopg.Connection[Row]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                make_conninfo(self._url, **self._options),
                autocommit=True,
                connect_timeout=self._timeout,
                password=self._password,
            )
        return self._conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock, _wrapped("PostgreSQL store"):
            cursor = self._connection().execute(_pg(sql), params)
            return cursor.fetchall() if cursor.description else []

    @contextmanager
    def transaction(self) -> Iterator[Run]:
        with self._lock, _wrapped("PostgreSQL store"):
            conn = self._connection()

            def run(sql: str, params: Sequence[object] = ()) -> list[Row]:
                cursor = conn.execute(_pg(sql), params)
                return cursor.fetchall() if cursor.description else []

            with conn.transaction():
                yield run

    def batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        # BEGIN and COMMIT go in the pipeline too (conn.transaction() would sync after
        # BEGIN): the batch costs one round trip and one commit, however long it is.
        with self._lock, _wrapped("PostgreSQL store"):
            conn = self._connection()
            runs = [(sql, [p for _, p in run]) for sql, run in groupby(statements, itemgetter(0))]
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    cursors = [_send(conn, sql, params) for sql, params in runs]
                    conn.execute("COMMIT")
            except BaseException:
                # A failed statement leaves the transaction aborted (the rest was skipped).
                if not conn.broken and conn.info.transaction_status != _IDLE:
                    conn.execute("ROLLBACK")
                raise
            return [rows for cursor in cursors for rows in _results(cursor)]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def prepare_file(path: Path) -> None:
    """Create the store's missing directories (0700) and its file (0600) before SQLite
    writes a byte, whatever the umask; SQLite gives its -wal and -shm files the database
    file's mode (and, run as root, its owner). Run as root, what is created here gets the
    owner of the directory it is made in, so ``sudo loginwatch digest --preview`` leaves
    no file the service user cannot write. An existing file is left as it is.

    Raises:
        StoreError: a directory or the file cannot be created (one line: the path, the fix).
    """
    fix = (
        "create it, writable by the user loginwatch runs as (install-central.sh does),"
        " or set $.store.url to a path that user can write"
    )
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made by a process starting at the same time
        except OSError as exc:
            raise StoreError(f"cannot create {directory} for the store {path}: {exc.strerror};"
                             f" {fix}") from None  # fmt: skip
        _own_like_parent(directory)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the store {path}: {exc.strerror}; {fix}") from None
    os.close(fd)
    _own_like_parent(path)


def _own_like_parent(path: Path) -> None:
    """As root: give ``path`` its directory's owner and group (the service user's store)."""
    if os.geteuid() != 0:
        return
    parent = path.parent.stat()
    os.chown(path, parent.st_uid, parent.st_gid, follow_symlinks=False)


def _send(
    conn: psycopg.Connection[Row], sql: str, params: list[Sequence[object]]
) -> psycopg.Cursor[Row]:
    """Queue a run of one statement in the pipeline (a run of several: one executemany)."""
    if len(params) == 1:
        return conn.execute(_pg(sql), params[0])
    cursor = conn.cursor()
    cursor.executemany(_pg(sql), params, returning=True)
    return cursor


def _results(cursor: psycopg.Cursor[Row]) -> Iterator[list[Row]]:
    """The rows of each statement a cursor ran, in order."""
    while True:
        yield cursor.fetchall() if cursor.description else []
        if not cursor.nextset():
            return


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def connect(
    url: str, durable: bool = False, password: str | None = None, ca_file: str | None = None
) -> SqliteDatabase | PostgresDatabase:
    """``postgresql://…`` (or ``postgres://``) → PostgreSQL; anything else is a SQLite path.

    ``durable``: every SQLite commit is fsync'd (PostgreSQL's always are). ``password``:
    PostgreSQL's, from ``[store] password_file`` (``schemas.config.store_password``);
    ``ca_file``: ``[store] ca_file`` (``tls_options``).

    Raises:
        StoreError: cannot open or connect.
    """
    if is_postgres(url):
        return PostgresDatabase(url, password=password, ca_file=ca_file)
    return SqliteDatabase(url.removeprefix("sqlite://"), durable)
