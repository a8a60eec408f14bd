"""install-host.sh on the PAM layouts of fresh machines (tests/fixtures/pam): Debian 12 stock,
with pam_cap, Ubuntu 24.04 and RHEL 9's authselect files. Each gets the session hook; the
Debian family the failed-password hook too; RHEL is told in one line what to do by hand
(authselect owns password-auth); and --uninstall gives every PAM file its bytes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.deploy_host import VENV, run_install
from tests.support.pam_layouts import DEBIAN_FAMILY, LAYOUTS, layout_root, pam_bytes

HOOK = "/usr/local/sbin/loginwatch-hook --config /etc/loginwatch/host.toml"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_gets_the_hook_and_its_bytes_back(tmp_path: Path, layout: str) -> None:
    root = layout_root(layout, tmp_path / "root")
    original = pam_bytes(root)
    config = tmp_path / "host.toml"
    config.write_text('[broker]\nurl = "amqp://127.0.0.1:1/%2F"\n')
    out = run_install("--root", root, "--venv", VENV, "--config", config)
    sshd = (root / "etc/pam.d/sshd").read_text()
    failures = f"auth [default=ignore] pam_exec.so quiet {HOOK} --outcome failure"
    if layout in DEBIAN_FAMILY:
        # Debian's sshd stack reads ~/.pam_environment (user_readenv=1): open_session only.
        assert f"session optional pam_exec.so quiet type=open_session {HOOK}" in sshd
        assert failures in sshd
        assert ("pam_cap.so" in sshd) == (layout != "debian12")  # common-auth inlined as is
    else:
        assert sshd.rstrip().splitlines()[-2] == f"session optional pam_exec.so quiet {HOOK}"
        assert failures not in sshd
        [line] = [line for line in out.splitlines() if "failed passwords" in line]
        assert "authselect owns password-auth" in line and "--no-failures" in line
        assert f'"{failures}" before the first "auth required pam_deny.so"' in line
    # Only /etc/pam.d/sshd changed: authselect's files (and every other) are as they were.
    changed = {k for k, v in pam_bytes(root).items() if original.get(k) != v}
    assert changed == {"etc/pam.d/sshd"}
    assert "is up to date" in run_install("--root", root, "--check")
    run_install("--root", root, "--uninstall")
    assert pam_bytes(root) == original
