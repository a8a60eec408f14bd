"""deploy/systemd: the units pass ``systemd-analyze verify`` and stay hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.deploy_host import REPO, VENV

UNITS = REPO / "deploy" / "systemd"
SERVICES = ("loginwatch-worker@.service", "loginwatch-digest.service", "loginwatch-flush.service")


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this venv (verify checks the binary exists)."""
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze (apt-get install systemd)")
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/loginwatch/", f"{VENV}/")
        text = text.replace("/usr/local/sbin/loginwatch-hook", f"{VENV}/bin/loginwatch-hook")
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
