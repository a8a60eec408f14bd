"""Shared fixtures: RabbitMQ vhosts, a private three-node cluster, PostgreSQL schemas,
stores on both backends.

A missing service skips a test on a developer's machine and fails it under CI
(``CI`` set, ``tests.support.services.missing``), so a green CI always means the real
parts were exercised. Helpers live in tests/support/; nothing imports this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.store import Store, open_store
from tests.support import pg
from tests.support.cluster import Cluster

# The broker fixtures (vhost, vh) are the host tests' own: they run without this file, on
# Python 3.9, where consumer.store cannot go (tests/support/host_side.py).
from tests.support.host_side import _hook_settings_caches, vh, vhost  # noqa: F401

# The run's last line names the tiers it skipped (tests/support/skip_report.py).
from tests.support.skip_report import pytest_runtest_logreport, pytest_unconfigure  # noqa: F401


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
