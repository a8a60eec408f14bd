"""The install scripts are POSIX sh: shellcheck finds nothing, dash parses them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.deploy_host import REPO
from tests.support.services import missing

SCRIPTS = (
    "deploy/install-host.sh",
    "deploy/install-central.sh",
    "deploy/lib/pam.sh",
    "deploy/lib/files.sh",
)


def test_shellcheck_finds_nothing_in_the_install_scripts() -> None:
    if shutil.which("shellcheck") is None:
        missing("shellcheck (apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", "-x", "-s", "sh", *SCRIPTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize("script", SCRIPTS)
def test_dash_parses_each_script(script: str) -> None:
    if shutil.which("dash") is None:
        missing("dash")
    result = subprocess.run(
        ["dash", "-n", script], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
