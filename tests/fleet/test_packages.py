"""The .deb and the .rpm (make packages).

The .deb in a Debian 13 chroot, as a host's operator uses it: dpkg -i (the venv is made, the
flush timer enabled, PAM untouched), loginwatch-host-setup (the explicit PAM step), a real ssh
login through the chroot's own sshd and PAM stack that reaches the broker, and dpkg -r, after
which every file of /etc/pam.d has its original bytes again.

The .rpm: no RPM distribution's chroot is at hand here (Debian's mirror only), so its files
and scripts are read with rpm -qlp/--scripts and installed with rpm -i --root --noscripts
into a scratch root. What that leaves untested is in docs/install.md (Packages)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import fleet
from tests.support.chroot import Chroot, unpacked
from tests.support.hookrun import TapQueue
from tests.support.services import Vhost, missing

pytestmark = pytest.mark.timeout(900)
ARCH = {"x86_64": ("amd64", "x86_64"), "aarch64": ("arm64", "aarch64")}[
    subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip()
]


def package(kind: str) -> Path:
    name = {
        "deb": f"loginwatch-host_{fleet.version()}-1_{ARCH[0]}.deb",
        "rpm": f"loginwatch-host-{fleet.version()}-1.{ARCH[1]}.rpm",
    }[kind]
    path = fleet.DIST / name
    if not path.exists():
        missing(f"dist/{name} (make packages)")
    return path


def pam_files(debian: Chroot) -> dict[str, bytes]:
    """Every file under the chroot's /etc/pam.d, by name: its bytes."""
    pam = debian.path("/etc/pam.d")
    return {p.name: p.read_bytes() for p in sorted(pam.iterdir()) if p.is_file()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ssh_login(debian: Chroot, tmp_path: Path, user: str) -> None:
    """``user`` logs in with a key through the chroot's own sshd and PAM stack."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    debian.run(["useradd", "-m", "-s", "/bin/sh", user])
    home = debian.path(f"/home/{user}/.ssh")
    home.mkdir(mode=0o700)
    (home / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    debian.run(["chown", "-R", f"{user}:{user}", f"/home/{user}/.ssh"])
    debian.run(["ssh-keygen", "-A"])
    debian.path("/run/sshd").mkdir(exist_ok=True)
    port = free_port()
    log = tmp_path / "sshd.log"
    sshd = debian.popen(
        ["/usr/sbin/sshd", "-D", "-e", "-p", str(port), "-o", "ListenAddress=127.0.0.1",
         "-o", "UsePAM=yes", "-o", "PasswordAuthentication=no"],
        log=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert sshd.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        done = subprocess.run(
            ["ssh", "-p", str(port), "-i", str(key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
             f"{user}@127.0.0.1", "true"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + log.read_text()
    finally:
        sshd.terminate()
        sshd.wait(timeout=20)


def test_the_deb_installs_sets_up_reports_a_login_and_goes_without_a_trace(
    vhost: Vhost, tap: TapQueue, tmp_path: Path
) -> None:
    deb = package("deb")
    config = tmp_path / "cfg" / "host.toml"
    config.parent.mkdir()
    config.write_text(f'[broker]\nurl = "{vhost.url()}"\n[host]\nname = "deb13-pkg"\n')
    with unpacked("13") as debian:
        original = pam_files(debian)
        timer = debian.path("/etc/systemd/system/timers.target.wants/loginwatch-flush.timer")
        done = debian.run(["dpkg", "-i", f"{fleet.DIST_IN}/{deb.name}"], binds=fleet.binds())
        assert "next: loginwatch-host-setup" in done.stdout, done.stdout
        assert debian.path("/usr/lib/loginwatch-host/venv/bin/python").exists()
        assert timer.is_symlink()  # enabled by the package
        assert pam_files(debian) == original  # installing edits no PAM file
        setup = debian.run(
            ["loginwatch-host-setup", "--config", "/cfg/host.toml"],
            binds={config.parent: "/cfg"},
        )
        assert "updated /etc/pam.d/sshd" in setup.stdout, setup.stdout
        assert "/usr/sbin/loginwatch-hook --config /etc/loginwatch/host.toml" in (
            debian.path("/etc/pam.d/sshd").read_text()
        )
        check = debian.run(["loginwatch-host-setup", "--check"])
        assert "/etc/pam.d/sshd is up to date" in check.stdout
        ssh_login(debian, tmp_path, "lwtest")
        [(props, event)] = tap.take(1, timeout=30)
        assert (event.host, event.user, event.service) == ("deb13-pkg", "lwtest", "sshd")
        assert props.user_id == "guest"
        removed = debian.run(["dpkg", "-r", "loginwatch-host"])
        assert "restored /etc/pam.d/sshd" in removed.stdout, removed.stdout
        assert pam_files(debian) == original  # byte for byte, every PAM file
        for gone in (
            "/usr/lib/loginwatch-host",
            "/usr/sbin/loginwatch-hook",
            "/var/lib/loginwatch-host",
        ):
            assert not debian.path(gone).exists(), gone
        assert not timer.is_symlink()
        assert debian.path("/etc/loginwatch/host.toml").exists()  # config and spool stay


def test_the_rpm_holds_the_files_and_scripts_of_the_deb(tmp_path: Path) -> None:
    if shutil.which("rpm") is None:
        missing("rpm (apt-get install rpm), to read and unpack the .rpm")
    rpm = package("rpm")
    files = subprocess.run(["rpm", "-qlp", str(rpm)], capture_output=True, text=True, check=True)
    listed = files.stdout.split()
    for path in (
        "/usr/sbin/loginwatch-hook",
        "/usr/sbin/loginwatch-host-setup",
        "/usr/lib/systemd/system/loginwatch-flush.service",
        "/usr/lib/systemd/system/loginwatch-flush.timer",
        "/usr/lib/loginwatch-host/install-host.sh",
        "/usr/lib/loginwatch-host/requirements/self.txt",
    ):
        assert path in listed, path
    assert not [p for p in listed if p.startswith("/usr/local")]
    wheels = [p for p in listed if p.endswith(".whl")]
    assert {f"cp3{minor}" for minor in range(9, 14)} <= {
        part for w in wheels if "msgspec" in w for part in Path(w).name.split("-")
    }
    assert not [w for w in wheels if ("aarch64" if ARCH[1] == "x86_64" else "x86_64") in w]
    scripts = subprocess.run(
        ["rpm", "-qp", "--scripts", str(rpm)], capture_output=True, text=True, check=True
    )
    assert "bundle_install" in scripts.stdout and "install-host.sh --packaged --uninstall" in (
        scripts.stdout
    )
    requires = subprocess.run(["rpm", "-qpR", str(rpm)], capture_output=True, text=True, check=True)
    assert "python3 >= 3.9" in requires.stdout and "pam" in requires.stdout.split()
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(
        ["rpm", "-i", "--root", str(root), "--noscripts", "--nodeps", "--dbpath", "/rpmdb",
         str(rpm)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    hook = root / "usr/sbin/loginwatch-hook"
    # The postinstall (not run here) puts the front-end or the launcher where it points.
    assert os.readlink(hook) == "/usr/lib/loginwatch-host/venv/bin/loginwatch-hook-foreground"
    launcher = root / "usr/lib/loginwatch-host/python-hook"
    assert launcher.read_text().startswith("#!/usr/lib/loginwatch-host/venv/bin/python -I\n")
    assert oct(launcher.stat().st_mode & 0o777) == "0o755"
    native = root / f"usr/lib/loginwatch-host/bin/{ARCH[1]}/loginwatch-hook"
    assert native.read_bytes().startswith(b"\x7fELF")
    sums = root / "usr/lib/loginwatch-host"
    check = subprocess.run(
        ["sha256sum", "--quiet", "--strict", "-c", "SHA256SUMS"], cwd=sums, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout
