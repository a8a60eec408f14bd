"""The PAM placement install-host.sh writes, proven with pamtester on the real stack.

The Debian /etc/pam.d/sshd (with its common-* includes) is copied, loginwatch is
installed into the copy, and pamtester authenticates a test user against it in
a private mount namespace: a wrong password still fails, a right one still
succeeds, whatever the hook does, and a failed password reaches the hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from producer import capture
from schemas.event import Outcome, PamType
from tests.support import native
from tests.support.deploy_host import INSTALL_HOST, VENV, InstalledHost, traversable_dir
from tests.support.hookrun import TapQueue, spool_records
from tests.support.services import Vhost, missing
from tests.support.sshd import TEST_PASSWORD, TEST_USER, PamNamespace, require_root_namespaces

pytestmark = [pytest.mark.integration, pytest.mark.sshd]

# Port 1 refuses at once: every event stays in the spool, where the test reads it.
OFFLINE_BROKER = 'url = "amqp://guest:guest@127.0.0.1:1/%2F"\nconnect_timeout = 1.0\n'


def host_config(spool: Path, broker: str = OFFLINE_BROKER) -> str:
    return f'[broker]\n{broker}[host]\nname = "pam-test"\n[spool]\ndir = "{spool}"\n'


def spooled(spool: Path) -> list[dict[str, bytes]]:
    return [capture.parse(record) for record in spool_records(spool)]


@pytest.fixture
def host(tmp_path: Path) -> InstalledHost:
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")
    return InstalledHost(tmp_path, host_config(tmp_path / "spool"))


def test_right_password_succeeds_wrong_fails_and_only_the_failure_is_spooled(
    host: InstalledHost, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    assert host.authenticate(TEST_USER, TEST_PASSWORD) == 0
    assert spooled(spool) == []
    assert host.authenticate(TEST_USER, "wrong", rhost="198.51.100.23") != 0
    assert host.authenticate("no-such-user", TEST_PASSWORD) != 0
    records = spooled(spool)
    assert [(r["PAM_USER"], r["PAM_TYPE"], r["LW_OUTCOME"]) for r in records] == [
        (TEST_USER.encode(), b"auth", b"failure"),
        (b"no-such-user", b"auth", b"failure"),
    ]
    assert records[0]["PAM_RHOST"] == b"198.51.100.23"


BROKEN_HOOKS = {
    "missing": None,
    "exits 1": "#!/bin/sh\nexit 1\n",
    "killed by a signal": "#!/bin/sh\nkill -9 $$\n",
    "not a program": "this is not a script\n",
    "exits 0 saying yes": "#!/bin/sh\necho yes\nexit 0\n",
}


def no_fail_delay(etc: Path) -> None:
    """pam_unix without its ~2 s delay after a failure (which nothing here tests)."""
    common_auth = etc / "pam.d" / "common-auth"
    common_auth.write_text(common_auth.read_text().replace("pam_unix.so", "pam_unix.so nodelay"))


@pytest.mark.parametrize("hook", BROKEN_HOOKS.values(), ids=BROKEN_HOOKS.keys())
def test_a_broken_hook_changes_nobodys_login(tmp_path: Path, hook: str | None) -> None:
    require_root_namespaces()
    host = InstalledHost(tmp_path, host_config(tmp_path / "spool"), edit_etc=no_fail_delay)
    host.set_hook(hook)
    assert host.authenticate(TEST_USER, TEST_PASSWORD) == 0
    assert host.authenticate(TEST_USER, "wrong") != 0
    assert host.authenticate("no-such-user", "") != 0
    status, out = host.session()
    assert status == 0, out


RECORD_ENV = "#!/bin/sh\nenv > {out}/$PAM_TYPE.env\n"


def test_the_session_hook_never_sees_the_users_pam_environment(
    host: InstalledHost, tmp_path: Path
) -> None:
    # Debian's sshd reads ~/.pam_environment (pam_env user_readenv=1): a
    # variable set there must not reach the hook, which runs as root.
    out = tmp_path / "env"
    out.mkdir()
    host.set_hook(RECORD_ENV.format(out=out))
    host.user_pam_environment(
        "LD_PRELOAD DEFAULT=/tmp/evil.so\n"
        "PYTHONPATH DEFAULT=/tmp/evil\n"
        "LOGINWATCH_CONFIG DEFAULT=/tmp/evil.toml\n"
    )
    # A witness at the end of the stack proves pam_env did read the user's file.
    late = tmp_path / "late"
    late.mkdir()
    witness = tmp_path / "witness"
    witness.write_text(RECORD_ENV.format(out=late))
    witness.chmod(0o755)
    with host.pam_file.open("a") as pam_file:
        pam_file.write(f"session optional pam_exec.so quiet {witness}\n")
    status, text = host.session()
    assert status == 0, text
    assert "PYTHONPATH=/tmp/evil\n" in (late / "open_session.env").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["open_session.env"]
    seen = (out / "open_session.env").read_text()
    assert f"PAM_USER={TEST_USER}\n" in seen
    for variable in ("LD_PRELOAD", "PYTHONPATH", "LOGINWATCH_CONFIG"):
        assert variable not in seen
    assert "logins only, no logout events" in host.output


def test_without_user_readenv_the_hook_runs_at_open_and_close(tmp_path: Path) -> None:
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")

    def no_user_readenv(etc: Path) -> None:
        sshd = etc / "pam.d" / "sshd"
        sshd.write_text(sshd.read_text().replace(" user_readenv=1", ""))

    host = InstalledHost(tmp_path, host_config(tmp_path / "spool"), edit_etc=no_user_readenv)
    out = tmp_path / "env"
    out.mkdir()
    host.set_hook(RECORD_ENV.format(out=out))
    status, text = host.session()
    assert status == 0, text
    assert sorted(p.name for p in out.iterdir()) == ["close_session.env", "open_session.env"]


@pytest.fixture
def tap(vhost: Vhost) -> Iterator[TapQueue]:
    queue = TapQueue(vhost.url())
    yield queue
    queue.close()


def test_a_failed_password_reaches_the_broker_as_a_failure_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")
    broker = f'url = "{vhost.url()}"\nconnect_timeout = 2.0\n'
    host = InstalledHost(tmp_path, host_config(tmp_path / "spool", broker))
    assert host.authenticate(TEST_USER, "wrong", rhost="203.0.113.9") != 0
    [(_, event)] = tap.take(1)
    assert (event.user, event.pam_type, event.outcome) == (
        TEST_USER,
        PamType.AUTH,
        Outcome.FAILURE,
    )
    assert event.rhost == "203.0.113.9"
    assert event.host == "pam-test"


def test_a_fresh_install_with_its_own_venv_reports_a_failed_password(tmp_path: Path) -> None:
    # No --venv: install-host.sh creates /opt/loginwatch-host with pip, as on a new host.
    require_root_namespaces()
    spool = tmp_path / "spool"
    host = InstalledHost(tmp_path, host_config(spool), edit_etc=no_fail_delay, venv=None)
    if native.built().exists():  # the C front-end, in the venv beside its python
        assert os.readlink(host.hook) == "/opt/loginwatch-host/bin/loginwatch-hook-native"
    else:
        assert host.hook.read_text().startswith("#!/opt/loginwatch-host/bin/python -I\n")
    assert host.authenticate(TEST_USER, TEST_PASSWORD) == 0
    assert host.authenticate(TEST_USER, "wrong") != 0
    assert [r["LW_OUTCOME"] for r in spooled(spool)] == [b"failure"]


def test_why_the_session_hook_goes_first_after_pam_env_the_user_sets_its_environment(
    tmp_path: Path,
) -> None:
    # The hazard the placement avoids: a hook line after `pam_env user_readenv=1`
    # runs as root with variables the user wrote, at open and at close.
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")
    out = tmp_path / "env"
    out.mkdir()
    hook = tmp_path / "hook"
    hook.write_text(RECORD_ENV.format(out=out))
    hook.chmod(0o755)
    ns = PamNamespace(traversable_dir() / "ns")
    (ns.home / ".pam_environment").write_text("PYTHONPATH DEFAULT=/tmp/evil\n")
    ns.set_service(
        "after-env",
        f"session required pam_env.so user_readenv=1\nsession optional pam_exec.so quiet {hook}\n",
    )
    status, text = ns.run(f"pamtester after-env {TEST_USER} open_session close_session")
    assert status == 0, text
    for phase in ("open_session", "close_session"):
        assert "PYTHONPATH=/tmp/evil\n" in (out / f"{phase}.env").read_text()


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path below ``root``: its mode and, for a file, its bytes."""
    return {
        str(path.relative_to(root)): (
            path.lstat().st_mode,
            path.read_bytes() if path.is_file() and not path.is_symlink() else b"",
        )
        for path in sorted(root.rglob("*"))
    }


def debian_root(tmp_path: Path, files: dict[str, str]) -> Path:
    """A --root tree: this machine's /etc/pam.d (Debian's sshd stack), ``files`` added."""
    root = tmp_path / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    for name, text in files.items():
        (root / "etc" / "pam.d" / name).write_text(text)
    return root


def append(path: Path, text: str) -> str:
    return path.read_text() + text


AUTH_READENV = "auth optional pam_env.so user_readenv=1\n"
# Debian's sshd with ~/.pam_environment read in its auth stack, three ways.
AUTH_LAYOUTS = {
    "@include": lambda d: {"common-auth": append(d / "common-auth", "@include site-env\n")},
    "include": lambda d: {"common-auth": append(d / "common-auth", "auth include site-env\n")},
    "substack": lambda d: {"common-auth": append(d / "common-auth", "auth substack site-env\n")},
}


@pytest.mark.parametrize("layout", AUTH_LAYOUTS.values(), ids=AUTH_LAYOUTS.keys())
def test_an_auth_stack_that_reads_the_users_file_is_refused_and_nothing_changes(
    tmp_path: Path, layout: Callable[[Path], dict[str, str]]
) -> None:
    root = debian_root(tmp_path, {"site-env": AUTH_READENV, **layout(Path("/etc/pam.d"))})
    before = snapshot(root)
    config = tmp_path / "host.toml"
    config.write_text(host_config(tmp_path / "spool"))
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
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("install-host: refusing to install, nothing changed: ")
    assert "/etc/pam.d/sshd:4 > /etc/pam.d/common-auth:" in line
    assert "> /etc/pam.d/site-env:1 runs pam_env.so (user_readenv=1) in the auth stack" in line
    assert "drop user_readenv=1 from that line" in line
    assert snapshot(root) == before
    # --check says the same, and changes nothing either.
    check = subprocess.run(
        ["sh", str(INSTALL_HOST), "--root", str(root), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (check.returncode, check.stderr.splitlines()) == (1, [line])
    assert snapshot(root) == before


SESSION_LAYOUTS = {
    # (files to add to Debian's pam.d, the sshd line the hook must come right before)
    "direct": ({}, "session    required     pam_env.so # [1]"),
    "via an include of common-session": (
        {"site-env": "session required pam_env.so user_readenv=1\n"},
        "@include common-session",
    ),
}


@pytest.mark.parametrize(("extra", "before"), SESSION_LAYOUTS.values(), ids=SESSION_LAYOUTS.keys())
def test_a_session_stack_that_reads_the_users_file_gets_the_hook_before_it_at_open_only(
    tmp_path: Path, extra: dict[str, str], before: str
) -> None:
    def layout(etc: Path) -> None:
        for name, text in extra.items():
            (etc / "pam.d" / name).write_text(text)
        if extra:
            common = etc / "pam.d" / "common-session"
            common.write_text(common.read_text() + "session include site-env\n")

    host = InstalledHost(tmp_path, host_config(tmp_path / "spool"), edit_etc=layout)
    lines = host.pam_file.read_text().splitlines()
    at = lines.index("# >>> loginwatch: login hook, before pam_env (install-host.sh)")
    assert lines[at + 1].startswith("session optional pam_exec.so quiet type=open_session ")
    assert lines[at + 3] == before
    assert "logins only, no logout events" in host.output


def test_a_stack_libpam_cannot_load_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    # A cycle: libpam's include has no depth limit of its own; our walk stops.
    root = debian_root(
        tmp_path,
        {"common-session": "@include sshd-extra\n", "sshd-extra": "@include common-session\n"},
    )
    before = snapshot(root)
    proc = subprocess.run(
        ["sh", str(INSTALL_HOST), "--root", str(root), "--venv", str(VENV)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    at = Path("/etc/pam.d/sshd").read_text().splitlines().index("@include common-session") + 1
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "install-host: refusing to install, nothing changed: /etc/pam.d/sshd's stack cannot be"
        f" read as libpam reads it: /etc/pam.d/sshd:{at} > /etc/pam.d/common-session:1 >"
        " /etc/pam.d/sshd-extra:1: include cycle back to /etc/pam.d/common-session"
    ]
    assert snapshot(root) == before
