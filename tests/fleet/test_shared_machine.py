"""The central machine is an SSH host too: both install scripts on one --root tree (issue 10.2).

In either order, and uninstalled in either order, neither script overwrites,
re-owns or removes a file of the other: the central side's config, its
broker.password (owned by the service user) and its venv in /opt/loginwatch
come out byte for byte, owner and mode as they were, and so do the host's
host.toml, host.password and /opt/loginwatch-host. Each script makes its own
venv here (pip, as on a new machine), so the markers that decide what
--uninstall removes are the real ones.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import native
from tests.support.deploy_host import INSTALL_HOST, REPO, VENV, run_install

INSTALL_CENTRAL = REPO / "deploy" / "install-central.sh"
SERVICE_UID = 64000  # stands in for the `loginwatch` user, which this machine lacks
CENTRAL_FILES = ("etc/loginwatch/loginwatch.toml", "etc/loginwatch/broker.password")
HOST_FILES = ("etc/loginwatch/host.toml", "etc/loginwatch/host.password")

pytestmark = pytest.mark.timeout(600)


def state(root: Path, *paths: str) -> dict[str, object]:
    """Each path (a directory: all below it): owner, group, mode and a digest of the bytes."""
    found: dict[str, object] = {}
    for name in paths:
        top = root / name
        for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
            info = path.lstat()
            if path.is_symlink():
                data = os.readlink(path).encode()
            elif path.is_file():
                data = path.read_bytes()
            else:
                data = b""
            key = str(path.relative_to(root))
            found[key] = (
                info.st_uid,
                info.st_gid,
                oct(info.st_mode),
                hashlib.sha256(data).digest(),
            )
    return found


@pytest.fixture
def host_files(tmp_path: Path) -> tuple[Path, Path]:
    """What `loginwatch host add web-1` gave the operator: web-1.toml and web-1.password."""
    config = tmp_path / "web-1.toml"
    config.write_text(
        "[broker]\n"
        'url = "amqp://host-web-1@127.0.0.1:5672/%2F"\n'
        'password_file = "/etc/loginwatch/host.password"\n'
        '[host]\nname = "web-1"\n'
    )
    password = tmp_path / "web-1.password"
    password.write_text("host-web-1-secret\n")
    password.chmod(0o600)
    return config, password


def install_central(root: Path, *args: str) -> str:
    output = run_install("--root", root, *args, script=INSTALL_CENTRAL)
    if not args:
        # The operator's broker-user step: the central password, the service user's.
        secret = root / "etc/loginwatch/broker.password"
        if not secret.exists():
            secret.write_text("central-secret\n")
            secret.chmod(0o600)
            os.chown(secret, SERVICE_UID, SERVICE_UID)
    return output


def install_host(root: Path, host_files: tuple[Path, Path], *args: str) -> str:
    config, password = host_files
    if args:
        return run_install("--root", root, *args)
    return run_install("--root", root, "--config", config, "--password-file", password)


def runs(root: Path, venv: str, *code: str) -> None:
    """The venv in the tree still works: its Python imports what its side needs."""
    python = root / venv.lstrip("/") / "bin/python"
    subprocess.run([python, "-I", "-B", "-c", *code], check=True, timeout=60)


CENTRAL_WORKS = "import consumer.cli, jinja2; consumer.cli.build_parser()"
HOST_WORKS = "import producer.hook"


def test_central_then_host_then_uninstall_host_then_central(
    root: Path, host_files: tuple[Path, Path]
) -> None:
    install_central(root)
    central = state(root, *CENTRAL_FILES, "opt/loginwatch", "usr/local/bin/loginwatch")
    install_host(root, host_files)
    assert state(root, *CENTRAL_FILES, "opt/loginwatch", "usr/local/bin/loginwatch") == central
    secret = root / "etc/loginwatch/host.password"
    assert secret.read_text() == "host-web-1-secret\n"
    assert (secret.stat().st_uid, oct(secret.stat().st_mode & 0o777)) == (0, "0o600")
    hook = root / "usr/local/sbin/loginwatch-hook"
    if native.built().exists():  # make test builds it (make native-check)
        assert os.readlink(hook) == "/opt/loginwatch-host/bin/loginwatch-hook-native"
        assert (root / "opt/loginwatch-host/bin/loginwatch-hook-native").is_file()
    else:
        assert hook.read_text().startswith("#!/opt/loginwatch-host/bin/python -I\n")
    assert "--config /etc/loginwatch/host.toml" in (root / "etc/pam.d/sshd").read_text()

    install_host(root, host_files, "--uninstall")
    assert state(root, *CENTRAL_FILES, "opt/loginwatch", "usr/local/bin/loginwatch") == central
    runs(root, "/opt/loginwatch", CENTRAL_WORKS)
    assert not (root / "opt/loginwatch-host").exists()
    assert not (root / "usr/local/sbin/loginwatch-hook").exists()
    kept = state(root, *HOST_FILES)

    install_central(root, "--uninstall")
    assert not (root / "opt/loginwatch").exists()
    assert not (root / "usr/local/bin/loginwatch").exists()
    assert state(root, *HOST_FILES) == kept


def test_host_then_central_then_uninstall_central_then_host(
    root: Path, host_files: tuple[Path, Path]
) -> None:
    install_host(root, host_files)
    host_paths = (*HOST_FILES, "opt/loginwatch-host", "usr/local/sbin", "var/spool/loginwatch")
    host = state(root, *host_paths)
    install_central(root)
    assert state(root, *host_paths) == host
    assert (root / "etc/loginwatch/loginwatch.toml").read_bytes() == (
        REPO / "deploy/loginwatch-central.toml"
    ).read_bytes()
    runs(root, "/opt/loginwatch", CENTRAL_WORKS)
    central = state(root, *CENTRAL_FILES)

    install_central(root, "--uninstall")
    assert state(root, *host_paths) == host
    runs(root, "/opt/loginwatch-host", HOST_WORKS)
    assert not (root / "opt/loginwatch").exists()

    install_host(root, host_files, "--uninstall")
    assert not (root / "opt/loginwatch-host").exists()
    assert state(root, *CENTRAL_FILES) == central
    assert (root / "etc/loginwatch/host.password").read_text() == "host-web-1-secret\n"


def refused(root: Path, *args: str | Path) -> str:
    proc = subprocess.run(
        ["sh", str(INSTALL_HOST), "--root", str(root), "--venv", str(VENV), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    ("config_text", "args"),
    [
        # A snippet from an older `host add`, which named the central side's file.
        ('[broker]\npassword_file = "/etc/loginwatch/broker.password"\n', ()),
        ("", ("--password-path", "/etc/loginwatch/broker.password")),
        ("", ("--config-path", "/etc/loginwatch/loginwatch.toml")),
    ],
    ids=["config-names-it", "password-path", "config-path"],
)
def test_a_host_install_never_takes_over_the_central_files(
    root: Path, tmp_path: Path, config_text: str, args: tuple[str, ...]
) -> None:
    central_dir = root / "etc/loginwatch"
    central_dir.mkdir(parents=True)
    (central_dir / "loginwatch.toml").write_text("# the central config\n")
    (central_dir / "broker.password").write_text("central-secret\n")
    os.chown(central_dir / "broker.password", SERVICE_UID, SERVICE_UID)
    (central_dir / "broker.password").chmod(0o600)
    before = state(root, *CENTRAL_FILES)
    config = tmp_path / "web-1.toml"
    config.write_text(config_text + '[host]\nname = "web-1"\n')
    password = tmp_path / "web-1.password"
    password.write_text("host-web-1-secret\n")
    message = refused(root, "--config", config, "--password-file", password, *args)
    assert "install-host: /etc/loginwatch/" in message
    assert state(root, *CENTRAL_FILES) == before
    assert "loginwatch-hook" not in (root / "etc/pam.d/sshd").read_text()
