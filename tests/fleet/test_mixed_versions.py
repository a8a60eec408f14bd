"""A fleet mid-upgrade: a host still on an older release (main at 0f873f8, host side 0.1.0,
installed from a git worktree of that commit with that commit's own lock) and a host of this
checkout report logins to this checkout's worker. Both are decoded and mailed, and `loginwatch
status` shows both versions, naming the host that has not upgraded yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import fleet
from tests.support.chroot import REPO
from tests.support.hookrun import PAM_ENV, run_hook, write_config
from tests.support.services import Vhost, missing
from tests.support.smtp_server import text_part
from tests.support.worker_helpers import loginwatch

pytestmark = pytest.mark.timeout(600)
OLD = "0f873f8"  # main before this issue: the host side required 3.11, hook_version 0.1.0


def old_hook(tmp_path: Path) -> Path:
    """The older release's hook, in a venv of its own made from that commit's locks."""
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{OLD}^{{commit}}"],
                           capture_output=True, check=False)  # fmt: skip
    if known.returncode != 0:
        missing(f"commit {OLD} in this clone's history (a shallow clone?)")
    tree = tmp_path / "old-tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), OLD],
                   check=True, capture_output=True)  # fmt: skip
    try:
        venv = tmp_path / "old-venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        for lock in ("build.txt", "host.txt"):
            subprocess.run([*pip, "--require-hashes", "-r", str(tree / "requirements" / lock)],
                           check=True, timeout=300)  # fmt: skip
        subprocess.run([*pip, "--no-deps", "--no-build-isolation", str(tree)], check=True,
                       timeout=300)  # fmt: skip
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)  # fmt: skip
    return venv / "bin" / "loginwatch-hook"


def test_an_older_hosts_logins_are_mailed_and_status_names_it(vh: Vhost, tmp_path: Path) -> None:
    hook = old_hook(tmp_path)
    hosts = {}
    for name in ("old-web", "new-web"):
        (tmp_path / name).mkdir()
        hosts[name] = write_config(tmp_path / name, vh.url(), host=name)
    with fleet.mailing_worker(vh, tmp_path) as smtp:
        assert run_hook(hosts["old-web"], hook=str(hook)).returncode == 0
        assert run_hook(hosts["new-web"]).returncode == 0
        mails = smtp.wait_for(2, timeout=60)
    subjects = sorted(str(m.message["Subject"]) for m in mails)
    assert len(mails) == 2 and "old-web" in subjects[1] and "new-web" in subjects[0], subjects
    for mail in mails:
        assert PAM_ENV["PAM_RHOST"] in text_part(mail.message)
    status = loginwatch("status", "--config", str(tmp_path / "central.toml"))
    lines = status.stdout.splitlines()
    at = lines.index("host-side versions that reported in the last day:")
    assert lines[at + 1].split() == [fleet.version(), "1", "host(s)"]
    assert lines[at + 2].split() == ["0.1.0", "1", "host(s):", "old-web"]
