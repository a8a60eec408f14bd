"""The real services a test or a tool needs: a missing one skips locally, fails under CI.

``missing`` is that rule (``CI`` set: a green CI always means the real parts were
exercised). ``fresh_vhost`` makes a RabbitMQ vhost of our own with ``guest`` granted
everything on it, deleted afterwards; the ``vhost``/``vh`` fixtures in tests/conftest.py,
the chaos runs, the benchmarks and the demo all use it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

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
    # The vhost and guest's permissions in one rabbitmqctl call (each starts an Erlang VM).
    made = {"vhosts": [{"name": name}],
            "permissions": [{"user": "guest", "vhost": name, "configure": ".*", "write": ".*",
                             "read": ".*"}]}  # fmt: skip
    done = subprocess.run(["rabbitmqctl", "-q", "import_definitions"], input=json.dumps(made),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    try:
        assert done.returncode == 0, f"rabbitmqctl import_definitions: {done.stderr}"
        yield Vhost(name)
    finally:
        rabbitmqctl("delete_vhost", name, check=False)
