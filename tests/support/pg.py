"""PostgreSQL for tests: a fresh schema per store, all dropped at the end of the session.

Tests use the ``pg_urls`` session fixture (tests/conftest.py, over ``schemas``):
``pg_urls()`` returns a ``postgresql://`` URL whose ``search_path`` is a new empty schema.
``LOGINWATCH_TEST_PG`` overrides the server DSN. A server that is not there skips locally
and fails under CI (``missing``). Benchmarks use ``pg_schema()``, which yields None without
a server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from tests.support.services import missing

PG_DSN = os.environ.get("LOGINWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def schemas() -> Iterator[Callable[[], str]]:
    """A maker of new empty schemas' URLs; every schema it made is dropped on exit."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        missing(f"PostgreSQL at {PG_DSN} ({exc})")
    made: list[str] = []

    def new_url() -> str:
        name = f"lw_test_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE SCHEMA "{name}"')
        made.append(name)
        return schema_url(name)

    yield new_url
    for name in made:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    admin.close()


def schema_url(name: str) -> str:
    """The server's URL with ``search_path`` set to schema ``name``."""
    return f"{PG_DSN}?options=-csearch_path%3D{name}"


@contextmanager
def pg_schema(prefix: str = "lw_bench") -> Iterator[str | None]:
    """A URL on a new empty schema, dropped afterwards; None when no server answers."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error:
        yield None
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield schema_url(name)
    finally:
        admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        admin.close()
