"""deploy/systemd: the units pass ``systemd-analyze verify`` and stay hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy_host import INSTALL_HOST, REPO, VENV, run_install
from tests.support.services import missing

UNITS = REPO / "deploy" / "systemd"
SERVICES = ("loginwatch-worker@.service", "loginwatch-digest.service", "loginwatch-flush.service",
            "loginwatch-web.service", "loginwatch-goodbye.service")  # fmt: skip


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this venv (verify checks the binary exists)."""
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze (apt-get install systemd)")
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/loginwatch/", f"{VENV}/")
        text = text.replace("/usr/local/sbin/loginwatch-hook", f"{VENV}/bin/loginwatch-hook")
        text = text.replace("/usr/sbin/loginwatch-hook", f"{VENV}/bin/loginwatch-hook")
        (tmp_path / unit.name).write_text(text)
    return tmp_path


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_unit_passes_systemd_analyze_verify(units: Path) -> None:
    names = sorted(p.name for p in units.iterdir())
    assert names == sorted([*SERVICES, "loginwatch-flush.timer"])
    result = analyze("verify", "--man=no", *sorted(units.iterdir()))
    # verify exits 0 on unknown keys and bad values, but says so on stderr.
    assert (result.returncode, result.stderr) == (0, "")


def test_a_typo_in_a_unit_would_be_caught(units: Path) -> None:
    unit = units / "loginwatch-digest.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = analyze("verify", "--man=no", unit)
    assert "Unknown key 'ProtectSytem'" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_hardened(units: Path, service: str) -> None:
    # systemd's own exposure score: 0 is a fully locked-down service, 10 none at all.
    result = analyze("security", "--offline=yes", units / service)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    print(f"{service}: exposure {match[1]}")
    assert float(match[1]) <= 2.0
    text = (units / service).read_text()
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"):
        assert setting in text
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in text


def host_tree(tmp_path: Path, spool_dir: str) -> tuple[Path, Path]:
    root = tmp_path / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    config = tmp_path / "host.toml"
    config.write_text(f'[host]\nname = "web-1"\n[spool]\ndir = "{spool_dir}"\n')
    return root, config


def test_the_flush_unit_may_write_the_spool_the_config_names(tmp_path: Path) -> None:
    root, config = host_tree(tmp_path, "/srv/loginwatch-spool")
    run_install("--root", root, "--venv", VENV, "--config", config)
    unit = root / "etc/systemd/system/loginwatch-flush.service"
    text = unit.read_text()
    # ProtectSystem=strict: any other directory would be read-only to the flush.
    assert [line for line in text.splitlines() if line.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=/srv/loginwatch-spool"
    ]
    spool = root / "srv/loginwatch-spool"
    assert (spool.stat().st_uid, oct(spool.stat().st_mode & 0o777)) == (0, "0o700")
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze (apt-get install systemd)")
    runnable = tmp_path / unit.name
    runnable.write_text(
        text.replace("/usr/local/sbin/loginwatch-hook", f"{VENV}/bin/loginwatch-hook")
    )
    result = analyze(
        "verify", "--man=no", runnable, root / "etc/systemd/system/loginwatch-flush.timer"
    )
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    "spool_dir",
    [
        "/var/spool/%h",  # a systemd specifier
        "/var/spool/a b",  # two paths to ReadWritePaths=
        "/var/spool/x\\nExecStartPre=/bin/sh -c id",  # a line of its own in the unit
        "/var/spool/a#b",  # the sed separator
        "spool",  # relative
        "/var/spool/../../etc",
    ],
)
def test_a_spool_dir_that_cannot_go_into_the_unit_as_it_is_is_refused(
    tmp_path: Path, spool_dir: str
) -> None:
    root, config = host_tree(tmp_path, spool_dir)
    proc = subprocess.run(
        [
            "sh",
            str(INSTALL_HOST),
            "--root",
            str(root),
            "--venv",
            str(VENV),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout
    if spool_dir == "spool":  # the config parser refuses it first, naming the key
        assert "$.spool: dir 'spool' is not an absolute path" in proc.stderr
    else:
        assert "[spool] dir" in proc.stderr
        assert "not a plain absolute path" in proc.stderr
    assert not (root / "etc/systemd/system/loginwatch-flush.service").exists()
    assert "loginwatch-hook" not in (root / "etc/pam.d/sshd").read_text()
