"""Shared fixtures: RabbitMQ vhosts, a private three-node cluster, PostgreSQL schemas,
stores on both backends.

A missing service skips a test on a developer's machine and fails it under CI
(``CI`` set, ``tests.support.services.missing``), so a green CI always means the real
parts were exercised. Helpers live in tests/support/; nothing imports this file.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.store import Store, open_store
from tests.support import pg
from tests.support.cluster import Cluster
from tests.support.services import Vhost, fresh_vhost, missing, rabbitmqctl


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


@pytest.fixture(scope="session")
def pg_urls() -> Iterator[Callable[[], str]]:
    """``pg_urls()`` is a ``postgresql://`` URL on a new empty schema, all of them dropped at
    the end of the session; skips (fails under CI) without a PostgreSQL server."""
    with pg.schemas() as new_url:
        yield new_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new store's URL, each test twice: a SQLite file in a directory yet to be made, then
    a fresh PostgreSQL schema (from ``pg_urls``)."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "loginwatch.db")
    new_url: Callable[[], str] = request.getfixturevalue("pg_urls")
    return new_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store open at ``store_url``."""
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A private three-node RabbitMQ cluster (tests/support/cluster.py), started once per
    session and stopped at its end; skips (fails under CI) without rabbitmq-server or root."""
    with Cluster(3) as made:
        yield made


@pytest.fixture
def cluster_vhost(cluster: Cluster) -> Iterator[str]:
    """A fresh vhost on ``cluster``; every node a test stopped or killed is back afterwards."""
    with cluster.vhost() as name:
        try:
            yield name
        finally:
            cluster.heal()
