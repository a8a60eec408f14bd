"""The hook's 2 s deadline fires inside the spool write, on a real disk that stops.

The spool lives on a loop-mounted ext4 (in a private mount namespace) that
``fsfreeze`` stops for 3.5 s while the hook writes its record: the write blocks in the
kernel, the alarm fires meanwhile, and its handler runs once the write returns. The
login goes on, and the record still reaches the real broker: found where the write
left it (a slot), or sent from memory when the write had only made an empty temp file,
which is removed. Each step of the write separately: tests/unit/test_hook_deadline.py.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from producer.hook import FOREGROUND_BOUND_S
from tests.support.hookrun import HOOK, PAM_ENV, TapQueue, warm_settings
from tests.support.loopfs import ext4_image
from tests.support.services import Vhost

pytestmark = pytest.mark.integration

FROZEN_S = FOREGROUND_BOUND_S + 1.5


@pytest.mark.parametrize("slots", [True, False], ids=["into a slot", "into a new file"])
def test_a_deadline_inside_a_frozen_write_still_delivers_the_login(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, slots: bool, hook: str
) -> None:
    with ext4_image() as fs:
        mnt = fs / "mnt"
        config = tmp_path / "host.toml"
        config.write_text(
            f'[broker]\nurl = "{vhost.url()}"\nconnect_timeout = 2.0\npublish_timeout = 8.0\n'
            f'[host]\nname = "frozen-1"\n[spool]\ndir = "{mnt}/spool"\n'
        )
        if hook != HOOK:
            warm_settings(config)  # else the C front-end hands the login to Python
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in PAM_ENV.items())
        script = f"""
            set -e
            mount -o loop {fs / "fs.img"} {mnt}
            mkdir -m 0700 {mnt}/spool
            {f"{HOOK} flush --config {config} >/dev/null" if slots else ""}
            fsfreeze -f {mnt}
            (sleep {FROZEN_S}; fsfreeze -u {mnt}) &
            env -i {env} {hook} --config {config} && echo "hook exit 0"
            wait
            flock {mnt}/spool/.publisher.lock true  # the publisher is done
            ls -a {mnt}/spool
        """
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert "hook exit 0" in done.stdout
    assert f"foreground took longer than {FOREGROUND_BOUND_S} s" in done.stderr
    [(_, event)] = tap.take(1)
    assert (event.host, event.user, event.client_ip) == ("frozen-1", "alice", "192.0.2.10")
    assert ".tmp" not in done.stdout and ".cap" not in done.stdout, done.stdout
    assert tap.take(1, timeout=0.5) == [], "once"
