"""A password spray costs a host one publisher's work, not one per failed password.

Each hook takes the publisher lock before it forks: a hook that finds a publisher
running forks nobody, and the running publisher lingers for the rest of the burst.
Which processes imported pika (what made a failed password cost ~80-180 ms of CPU) is
counted by a stand-in ``pika`` package first on the hook's path, which notes its
importer's pid and hands over to the real pika. The figure itself (CPU per failed
password against a bare interpreter): ``python -m tests.bench.bench_hook --only spray``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from producer.backlog import spool_lock
from tests.support.cpu_meter import cpu_of
from tests.support.hookrun import (
    FAILED_PASSWORD,
    HOOK,
    TapQueue,
    run_hook,
    spooled,
    write_config,
)
from tests.support.native import native_hook
from tests.support.services import Vhost

pytestmark = pytest.mark.integration

BURST = 30
# Notes who imported it, then becomes the real pika (a module may replace itself in
# sys.modules while it is imported; the import statement returns what is there).
SHIM = """\
import os, sys
with open(os.path.join(os.path.dirname(__file__), os.pardir, "imported"), "a") as marks:
    marks.write(f"{os.getpid()}\\n")
sys.path.remove(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
del sys.modules["pika"]
import pika
"""


def test_a_burst_of_failed_passwords_imports_pika_in_one_publisher(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    config = write_config(tmp_path, vhost.url())
    assert run_hook(config).returncode == 0  # the settings cache and the slots, as on a host
    assert len(tap.take(1)) == 1
    with spool_lock(str(tmp_path / "spool"), wait=30):  # its publisher is done lingering
        pass
    shim = tmp_path / "shim"
    (shim / "pika").mkdir(parents=True)
    (shim / "pika" / "__init__.py").write_text(SHIM)
    # The test hook is the venv's console script: no -I, so PYTHONPATH reaches it (the
    # installed launcher runs python -I, which ignores it).
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **FAILED_PASSWORD, "PYTHONPATH": str(shim)}
    argv = [HOOK, "--config", str(config), "--outcome", "failure"]
    for wave in range(0, BURST, 10):  # as sshd's MaxStartups lets them in: 10 at a time
        hooks = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE) for _ in range(10)]
        assert [h.wait(timeout=30) for h in hooks] == [0] * 10, wave
    events = [event for _, event in tap.take(BURST, timeout=30)]
    assert len(events) == BURST and {e.kind for e in events} == {"failure"}
    with spool_lock(str(tmp_path / "spool"), wait=30):
        pass
    importers = (shim / "imported").read_text().split()
    # One publisher took the whole burst; on a slow machine a second may start when the
    # first stops taking new records (half its publish_timeout), never one per failure.
    assert 1 <= len(importers) <= 2, importers
    assert spooled(tmp_path) == []


def test_a_burst_of_failed_passwords_through_the_c_front_end_starts_one_publisher(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    """The same burst through the C front-end, counting processes (its publisher gets a clean
    environment, so no shim reaches it): every detached publisher is reaped by a child
    subreaper, and the hooks plus one publisher (two on a slow machine) is all there is.
    (Python foregrounds on a machine this loaded can pass their 2 s deadline, whose handler
    forks a child with the record: more processes, still one importer of pika, above.)"""
    hook = native_hook()
    config = write_config(tmp_path, vhost.url())
    assert run_hook(config, hook=hook).returncode == 0  # the settings cache and the slots
    assert len(tap.take(1)) == 1
    with spool_lock(str(tmp_path / "spool"), wait=30):
        pass
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **FAILED_PASSWORD}
    argv = [hook, "--config", str(config), "--outcome", "failure"]
    measured = cpu_of([argv] * BURST, env, parallel=10)
    assert 1 <= measured.processes - BURST <= 2, measured
    events = [event for _, event in tap.take(BURST, timeout=30)]
    assert len(events) == BURST and {e.kind for e in events} == {"failure"}
    assert spooled(tmp_path) == []
