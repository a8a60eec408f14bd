"""The hook's publisher, when it cannot start or finds the spool unusable, says why in one
syslog line (authpriv). Each test reads syslog in a mount namespace of its own (``unshare -m``
with a private /dev/log, tests/support/syslog_capture.py): root and util-linux, not the unit
tier's venv alone."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.hook import FOREGROUND_BOUND_S
from tests.support.hookrun import (
    HOOK,
    PAM_ENV,
    run_hook,
    spooled,
    unreachable_url,
    write_config,
)
from tests.support.syslog_capture import SyslogNamespace

HOOK_BOUND_S = FOREGROUND_BOUND_S + 3


@pytest.fixture
def down(tmp_path: Path) -> Path:
    """A host config whose broker is unreachable (nothing listens on the port)."""
    return write_config(tmp_path, unreachable_url())


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[SyslogNamespace]:
    ns = SyslogNamespace(tmp_path / "syslog")
    yield ns
    ns.close()


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('raise ImportError("pika is broken on this host")', "ImportError: pika is broken"),
        ('raise RuntimeError("half an upgrade")', "RuntimeError: half an upgrade"),
        ("raise SystemExit(3)", "SystemExit: 3"),
    ],
    ids=["import error", "any exception", "system exit"],
)
def test_a_publisher_that_cannot_import_logs_one_line(
    tmp_path: Path, down: Path, syslog: SyslogNamespace, broken: str, expected: str
) -> None:
    # A broken pika where the hook's Python finds it first (this test hook is the venv's
    # console script, without -I; the installed launcher ignores PYTHONPATH).
    fake = tmp_path / "broken" / "pika"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(broken + "\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(fake.parent), **PAM_ENV}
    run = syslog.run([HOOK, "--config", str(down)], env, timeout=HOOK_BOUND_S + 10)
    assert run.returncode == 0, run.stderr
    line = syslog.wait_for("publisher crashed")
    assert line is not None, f"no syslog line; received {syslog.received}"
    assert line.startswith("<84>"), "authpriv.warning, as the hook logs"
    assert re.search(r"loginwatch-hook\[\d+\]: publisher crashed, events stay spooled: ", line)
    assert expected in line and "pika/__init__.py:1" in line
    assert "\n" not in line.rstrip("\n")
    assert len(spooled(tmp_path)) == 1, "the event waits for a publisher that works"


def test_the_publisher_logs_why_the_spool_is_unusable(
    tmp_path: Path, down: Path, syslog: SyslogNamespace
) -> None:
    """The foreground spooled the event; then the spool became unsafe before the child ran."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **PAM_ENV}
    assert run_hook(down, timeout=HOOK_BOUND_S).returncode == 0
    (tmp_path / "spool").chmod(0o777)
    flush = subprocess.run(
        [HOOK, "--config", str(down), "flush"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert flush.returncode == 1
    assert "writable by group or others" in flush.stderr and "Traceback" not in flush.stderr
    assert syslog.run([HOOK, "--config", str(down)], env).returncode == 0
    line = syslog.wait_for("loginwatch-hook")
    assert line is not None and "event not spooled" in line


def test_a_symlinked_counter_is_not_followed_and_the_events_are_kept(
    tmp_path: Path, syslog: SyslogNamespace
) -> None:
    config = write_config(tmp_path, unreachable_url(), "max_events = 1")
    victim = tmp_path / "shadow"
    victim.write_text("root:$6$x:1::::::\n")
    (tmp_path / "spool").mkdir(mode=0o700)
    (tmp_path / "spool" / "dropped").symlink_to(victim)
    assert run_hook(config, timeout=HOOK_BOUND_S).returncode == 0
    assert len(spooled(tmp_path)) == 1, "the event itself is kept"
    # Full: the login goes to the publisher in memory, which finds no broker and
    # would count the drop.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **PAM_ENV}
    run = syslog.run([HOOK, "--config", str(config)], env, timeout=HOOK_BOUND_S + 10)
    assert run.returncode == 0
    [line] = run.stderr.decode().splitlines()
    assert "event not spooled: 1 events spooled (max_events 1), all of them logins" in line
    counted = syslog.wait_for("could not be counted either")
    assert counted is not None, syslog.received
    assert "dropped is a symlink: not followed" in counted
    assert victim.read_text() == "root:$6$x:1::::::\n"
    assert len(spooled(tmp_path)) == 1
