"""The host side's tests, named in one place, and the fixtures they need.

The host side (producer/ and the schemas modules it imports, deploy/host/modules.txt) runs
on every host Python from 3.9 to 3.13, so its tests do too: ``make fleet`` runs ``HOST_TESTS``
in the Debian 11 (3.9) and 13 (3.13) chroots with pytest 8 (requirements/host-test.txt), as

    python -m pytest --noconftest -p tests.support.host_side $(python -m tests.support.host_side)

``--noconftest`` because tests/conftest.py imports the central side (consumer.store), which
needs Python 3.11; this module, loaded as a plugin, gives the host tests the fixtures they
use instead, and the conftests (tests/, tests/integration/hook/) take the same ones from
here for every other run. So these tests, this module and the support modules they import
stay importable on 3.9: ``make lint`` checks them with ruff at py39 (``python -m
tests.support.imports --host-tests`` names them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hookrun import HOOK, TapQueue
from tests.support.native import native_hook
from tests.support.services import Vhost, fresh_vhost, missing, rabbitmqctl

HOST_TESTS = (
    "tests/unit/test_config.py",
    "tests/unit/test_config_files.py",
    "tests/unit/test_durations.py",
    "tests/unit/test_event.py",
    "tests/unit/test_hook_offline.py",
    "tests/unit/test_hook_safedir.py",
    "tests/unit/test_hook_unit.py",
    "tests/unit/test_host_sessions.py",
    "tests/unit/test_install_values.py",
    "tests/unit/test_wire.py",
    "tests/integration/hook/test_hook_broker.py",
    "tests/integration/hook/test_hook_environ.py",
    "tests/integration/hook/test_hook_syslog.py",
)


@pytest.fixture(scope="session")
def vhost() -> Iterator[Vhost]:
    """The session's vhost; skips (fails under CI) without a running RabbitMQ.

    ``$LOGINWATCH_TEST_VHOST`` names one made (and deleted) by the caller instead: a chroot
    reaches the broker on 127.0.0.1 but has no rabbitmqctl.
    """
    given = os.environ.get("LOGINWATCH_TEST_VHOST")
    if given:
        yield Vhost(given)
        return
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


@pytest.fixture
def tap(vhost: Vhost) -> Iterator[TapQueue]:
    """A queue bound to the events exchange of the session's vhost: every event published."""
    queue = TapQueue(vhost.url())
    yield queue
    queue.close()


@pytest.fixture(params=["python", "native"])
def hook(request: pytest.FixtureRequest) -> str:
    """The hook to run, once per foreground: the Python one (the console script) and the C
    front-end (producer/native, built and installed beside the venv's python)."""
    return HOOK if request.param == "python" else native_hook()


@pytest.fixture(scope="session", autouse=True)
def _hook_settings_caches() -> Iterator[None]:
    """Remove the hook settings caches that test configs (under /tmp) left in /run."""
    yield
    for cache in Path("/run/loginwatch").glob("hook-settings-%2Ftmp%2F*"):
        cache.unlink(missing_ok=True)


if __name__ == "__main__":
    print("\n".join(HOST_TESTS))
