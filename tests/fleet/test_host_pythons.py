"""The host side on the oldest and the newest host Python: Debian 11's 3.9.2 (RHEL 9 and
Amazon Linux 2023 have 3.9 too) and Debian 13's 3.13, each in a debootstrapped chroot.

The host tests (tests/support/host_side.py: the hook, its flush and publisher against the
real broker, the host unit tests) run there with pytest 8, and the host side installs from
the bundle as an operator would install it, then reports a login to the broker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import fleet
from tests.support.chroot import Chroot
from tests.support.hookrun import TapQueue
from tests.support.host_side import HOST_TESTS
from tests.support.services import Vhost

pytestmark = pytest.mark.timeout(900)


def test_the_host_tests_pass_on_the_hosts_own_python(debian: Chroot, vhost: Vhost) -> None:
    python = fleet.with_test_venv(debian)
    done = debian.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "--noconftest",
         "-p", "tests.support.host_side", "-q", *HOST_TESTS],
        binds=fleet.binds(), cwd=fleet.SRC, check=False,
        env={"LOGINWATCH_TEST_VHOST": vhost.name, "CI": "true", "PYTHONDONTWRITEBYTECODE": "1",
             "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/hypothesis"},
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-6000:]
    # CI=true inside too: a test that would skip for a missing part fails instead.
    assert re.fullmatch(r"\d+ passed in [\d.]+s( \(.*\))?", last), last
    assert f"Python {debian.python}" in debian.run([python, "--version"]).stdout


def test_the_bundle_installs_and_its_hook_reports_a_login(
    debian: Chroot, vhost: Vhost, tap: TapQueue, tmp_path: Path
) -> None:
    config = tmp_path / "host.toml"
    config.write_text(f'[broker]\nurl = "{vhost.url()}"\n[host]\nname = "deb{debian.release}"\n')
    out = fleet.install_from_bundle(debian, config).stdout
    assert f"loginwatch-host {fleet.version()} from the bundle" in out, out
    assert "updated /etc/pam.d/sshd" in out, out
    pam = debian.path("/etc/pam.d/sshd").read_text()
    # (Debian 11's sshd stack reads ~/.pam_environment: the hook is an open_session one there.)
    assert f"pam_exec.so quiet {fleet.HOOK} --config" in pam or (
        f"pam_exec.so quiet type=open_session {fleet.HOOK} --config" in pam
    )
    cfg = debian.path("/opt/loginwatch-host/pyvenv.cfg").read_text()
    assert re.search(rf"^version\w* = {re.escape(debian.python)}\.\d+$", cfg, re.M), cfg
    assert fleet.login(debian).returncode == 0
    [(_props, event)] = tap.take(1, timeout=20)
    assert (event.host, event.user, event.hook_version) == (
        f"deb{debian.release}", "alice", fleet.version(),
    )  # fmt: skip
    # A second run changes nothing.
    again = fleet.install_from_bundle(debian, config).stdout
    assert "already up to date" in again and "wrote" not in again, again
    # --upgrade --bundle puts back what the bundle pins (here: a pika someone removed).
    venv = debian.path("/opt/loginwatch-host")
    for pika in venv.glob("lib/python3*/site-packages/pika*"):
        debian.run(["rm", "-rf", f"/{pika.relative_to(debian.root)}"])
    python = "/opt/loginwatch-host/bin/python"
    assert debian.run([python, "-c", "import pika"], check=False).returncode == 1
    upgraded = fleet.install_from_bundle(debian, config, "--upgrade").stdout
    assert f"upgrading loginwatch-host in /opt/loginwatch-host ({fleet.version()} from" in upgraded
    debian.run([python, "-c", "import pika"])
    assert debian.path("/var/lib/loginwatch-host/version").read_text() == fleet.version() + "\n"
    # --uninstall gives the PAM file back.
    debian.run(["sh", f"{fleet.SRC}/deploy/install-host.sh", "--uninstall"], binds=fleet.binds())
    assert "loginwatch" not in debian.path("/etc/pam.d/sshd").read_text()
