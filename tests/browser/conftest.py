"""The browser tier (``make browser``): real headless Chromium (Debian's, driven through
/usr/bin/chromedriver) against ``loginwatch web`` on loopback. Every test here carries the
``browser`` and ``integration`` markers; ``make test`` leaves them out, ``make browser`` runs
them alone, within its time budget, and ``.ci/run`` runs both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.loop import Loop, running_loop
from tests.support.services import Vhost, fresh_vhost

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def loop(vhost: Vhost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """One worker, web service and SMTP server for the module's tests."""
    with fresh_vhost("loginwatch-browser") as mine:
        with running_loop(mine, tmp_path_factory.mktemp("loop"), digest=True) as running:
            yield running
