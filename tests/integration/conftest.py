"""Every test in this folder talks to something real: RabbitMQ, an SMTP or DNS server of
our own on loopback, sshd, PostgreSQL, the machine's PAM files or shellcheck. They all carry
the ``integration`` marker, so ``pytest -m "not integration"`` leaves them out wherever they
are collected from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.smtp_server import SmtpServer

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server of our own on loopback, stopped after the test."""
    with SmtpServer() as server:
        yield server
