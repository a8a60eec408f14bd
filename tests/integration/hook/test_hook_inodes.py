"""A local user who takes every inode of the spool's file system cannot hide a root login.

ext4 keeps blocks in reserve for root (``-m 5``), not inodes. Here the spool lives on a
small loop-mounted ext4 with a world-writable directory, as ``/var/tmp`` is on a stock
Debian root file system; ``nobody`` creates empty files there until none is left, and
root itself can then make no file either. A root login over a real sshd, through the
real PAM stack and the real hook, still reaches the inbox with its user and source: its
record goes into a preallocated slot, which needs no inode.

Everything happens inside sshd's private mount namespace: the loop mount (``mount -o
loop``, detached when the namespace's last process exits) never shows on the machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hookrun import HOOK, warm_settings
from tests.support.loopfs import ext4_image
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer, text_part
from tests.support.sshd import ACCOUNT_STACK, AUTH_STACK, SESSION_STACK, Sshd, hook_line
from tests.support.worker_helpers import loginwatch, running_worker, write_config

pytestmark = [pytest.mark.integration, pytest.mark.sshd]


@pytest.fixture
def small_fs() -> Iterator[Path]:
    """A 16 MiB ext4 image with 256 inodes (``fs.img``) and a mount point (``mnt``)."""
    with ext4_image(inodes=256) as where:
        yield where


def fill_inodes(image: Path, mnt: Path, hook_config: Path) -> str:
    """What sshd's namespace runs first: mount, make the spool (and its slots, as the
    first publisher or the flush timer does), then ``nobody`` takes every inode."""
    return f"""
mount -o loop {image} {mnt}
mkdir -m 0700 {mnt}/spool
mkdir -m 1777 {mnt}/tmp
{HOOK} flush --config {hook_config}
setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c \\
    'n=0; while touch {mnt}/tmp/f$n 2>/dev/null; do n=$((n+1)); done; echo "nobody made $n files"'
echo "inodes free: $(df --output=iavail {mnt} | tail -1 | tr -d ' ')"
if touch {mnt}/spool/probe; then echo "root made a file"; else echo "root cannot make a file"; fi
"""


def test_a_root_login_reaches_the_inbox_when_a_user_took_every_inode(
    vh: Vhost, tmp_path: Path, small_fs: Path, hook: str
) -> None:
    mnt = small_fs / "mnt"
    hook_config = tmp_path / "host.toml"
    hook_config.write_text(
        f'[broker]\nurl = "{vh.url()}"\nconnect_timeout = 2.0\npublish_timeout = 8.0\n'
        f'[host]\nname = "db-1"\n[spool]\ndir = "{mnt}/spool"\n'
    )
    stack = AUTH_STACK + ACCOUNT_STACK + SESSION_STACK + hook_line(hook, hook_config)
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port)
        config.write_text(config.read_text().replace('mode = "immediate"', 'kinds = ["login"]'))
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        setup = fill_inodes(small_fs / "fs.img", mnt, hook_config)
        with running_worker(config, tmp_path / "worker.log"), Sshd(stack, setup=setup) as sshd:
            if hook != HOOK:  # else the C front-end hands the login to Python
                warm_settings(hook_config, sshd.ns.run_dir / "loginwatch")
            log = sshd.tail()
            sshd.ssh("root", "true")
            [received] = smtp.wait_for(1)
            log = sshd.tail()
    assert re.search(r"nobody made \d{3} files", log), log
    assert "inodes free: 0" in log and "root cannot make a file" in log, log
    mail = received.message
    assert "root" in mail["Subject"] and "db-1" in mail["Subject"]
    assert "127.0.0.1" in text_part(mail)
