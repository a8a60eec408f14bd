"""A host that reaches no package index installs from the bundle: inside a network namespace
with no route at all (not even loopback), Debian 11's python3 3.9 without python3-venv. Its
hook then keeps a login in the spool (no broker there either), the flush timer's command
publishes it once the host is back on the network, and a worker of this checkout mails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fleet
from tests.support.chroot import Chroot
from tests.support.services import Vhost
from tests.support.smtp_server import text_part

pytestmark = pytest.mark.timeout(600)


def test_the_bundle_installs_with_no_route_and_the_hooks_login_is_mailed(
    debian11: Chroot, vh: Vhost, tmp_path: Path
) -> None:
    assert not debian11.path("/usr/lib/python3.9/ensurepip").exists()  # no python3-venv
    config = tmp_path / "host.toml"
    config.write_text(f'[broker]\nurl = "{vh.url()}"\n[host]\nname = "offline-1"\n')
    with fleet.offline_netns() as offline:
        out = fleet.install_from_bundle(debian11, config, netns=offline).stdout
        assert "loginwatch-host" in out and "updated /etc/pam.d/sshd" in out, out
        assert fleet.login(debian11, netns=offline, user="carol").returncode == 0
    spool = debian11.path("/var/spool/loginwatch")
    assert len(list(spool.glob("*.cap"))) == 1  # kept: no broker reachable
    with fleet.mailing_worker(vh, tmp_path) as smtp:
        flushed = fleet.flush(debian11)
        assert flushed.returncode == 0, flushed.stdout
        [mail] = smtp.wait_for(1, timeout=30)
    assert "carol" in str(mail.message["Subject"]) and "offline-1" in str(mail.message["Subject"])
    assert "192.0.2.10" in text_part(mail.message)
    assert list(spool.glob("*.cap")) == []


def test_without_python3_venv_an_install_from_source_says_what_to_install(
    debian11: Chroot, tmp_path: Path
) -> None:
    config = tmp_path / "host.toml"
    config.write_text('[host]\nname = "web-1"\n')
    done = debian11.run(
        ["sh", f"{fleet.SRC}/deploy/install-host.sh", "--config", "/cfg/host.toml"],
        binds=fleet.binds((tmp_path, "/cfg")), check=False,
    )  # fmt: skip
    assert done.returncode == 1
    [line] = done.stdout.strip().splitlines()
    assert line.startswith("install-host: /usr/bin/python3 -m venv failed: install python3-venv")
    assert "--bundle" in line
    for path in ("/etc/loginwatch", "/opt/loginwatch-host", "/var/lib/loginwatch-host"):
        assert not debian11.path(path).exists(), path
