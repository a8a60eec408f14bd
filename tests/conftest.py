"""Shared fixtures: a private RabbitMQ vhost per test session, service checks.

A missing service skips a test on a developer's machine and fails it under CI
(``CI`` set), so a green CI always means the real parts were exercised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from consumer.store import Store, open_store

CI = bool(os.environ.get("CI"))
AMQP_HOST = os.environ.get("LOGINWATCH_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("LOGINWATCH_TEST_AMQP_PORT", "5672"))


def missing(what: str) -> None:
    """Skip locally, fail under CI: a service the test needs is not there."""
    if CI:
        pytest.fail(f"required for CI: {what}")
    pytest.skip(f"not available: {what}")


def rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=check
    )


class Vhost:
    """A RabbitMQ vhost of our own, with ``guest`` granted everything on it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def url(self, user: str = "guest", password: str = "guest", port: int = AMQP_PORT) -> str:
        return (
            f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{AMQP_HOST}:{port}"
            f"/{quote(self.name, safe='')}"
        )


@contextmanager
def fresh_vhost(prefix: str = "loginwatch-w") -> Iterator[Vhost]:
    """A vhost of our own (deleted afterwards, whatever happens)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield Vhost(name)
    finally:
        rabbitmqctl("delete_vhost", name, check=False)


@pytest.fixture(scope="session")
def vhost() -> Iterator[Vhost]:
    """The session's vhost; skips (fails under CI) without a running RabbitMQ."""
    if shutil.which("rabbitmqctl") is None:
        missing("rabbitmqctl (apt-get install rabbitmq-server)")
    try:
        rabbitmqctl("status")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        missing("a running RabbitMQ (rabbitmq-server -detached)")
    with fresh_vhost("loginwatch-test") as made:
        yield made


@pytest.fixture
def vh(vhost: Vhost) -> Iterator[Vhost]:
    """A fresh vhost per test (``vhost`` makes sure RabbitMQ is there at all)."""
    with fresh_vhost() as mine:
        yield mine


@pytest.fixture(scope="session", autouse=True)
def _hook_settings_caches() -> Iterator[None]:
    """Remove the hook settings caches that test configs (under /tmp) left in /run."""
    yield
    for cache in Path("/run/loginwatch").glob("hook-settings-%2Ftmp%2F*"):
        cache.unlink(missing_ok=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store's URL, each test twice: a SQLite file in a directory yet to be made, then
    a fresh PostgreSQL schema (the module imports ``tests.pg.pg_urls`` for that)."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "loginwatch.db")
    new_url: Callable[[], str] = request.getfixturevalue("pg_urls")
    return new_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store open at ``store_url``."""
    with open_store(store_url) as opened:
        yield opened
