"""The digest's tests: a window sender on a real store (SQLite, then PostgreSQL) whose mails
go to an outbox, or through a real SMTP server where the test says so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.digest.sender import WindowSender
from tests.support.digest_support import digests_for, make_config
from tests.support.fakes import Outbox


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store's URL, each test twice: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "loginwatch.db")
    new_url: Callable[[], str] = request.getfixturevalue("pg_urls")
    return new_url()


@pytest.fixture
def digests(store_url: str) -> Iterator[WindowSender]:
    """The digest's window sender on ``store_url``, mailing to an ``Outbox``."""
    made = digests_for(make_config(store_url), Outbox())
    yield made
    made.store.store.close()
