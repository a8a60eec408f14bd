"""The hook's pieces without a broker: argv, settings cache, spool bounds, capture."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer import capture, hook, ledger, settings, spool
from producer.backlog import Backlog, spool_lock
from schemas.paths import DEFAULT_CONFIG


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ("/etc/loginwatch/loginwatch.toml", "")),
        (["--config", "/x.toml"], ("/x.toml", "")),
        (["--config=/x.toml", "--outcome", "failure"], ("/x.toml", "failure")),
        (["--outcome=success"], ("/etc/loginwatch/loginwatch.toml", "success")),
        (["flush"], None),
        (["--help"], None),
        (["--config"], None),
        (["--outcome", "maybe"], None),
    ],
)
def test_fast_argv(
    argv: list[str], expected: tuple[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGINWATCH_CONFIG", raising=False)
    assert hook._fast_args(argv) == expected


def test_under_pam_the_users_environment_cannot_redirect_the_hook(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # pam_env user_readenv=1 lets a user put these into the hook's environment.
    monkeypatch.setenv("LOGINWATCH_CONFIG", str(tmp_path / "evil.toml"))
    monkeypatch.setenv(settings.RUNTIME_ENV, str(tmp_path / "evil-run"))
    monkeypatch.setenv("PAM_TYPE", "open_session")
    assert hook._fast_args([]) == (DEFAULT_CONFIG, "")
    assert settings.cache_path("/c.toml").startswith(settings.RUNTIME_DIR + "/")
    monkeypatch.delenv("PAM_TYPE")
    assert hook._fast_args([]) == (str(tmp_path / "evil.toml"), "")
    assert settings.cache_path("/c.toml").startswith(str(tmp_path / "evil-run"))


def test_capture_round_trip_keeps_raw_bytes_and_bounds_values() -> None:
    env = {b"PAM_USER": b"x\xff" * 5000, b"PAM_TYPE": b"auth", b"HOME": b"/root"}
    name, data = capture.record(env, "failure", 123)
    items = capture.parse(data)
    assert name.startswith("00000000000000000123-") and name.endswith(".cap")
    assert data.startswith(b"LWCAP2 L 00000000000000000123 ")
    assert len(items["PAM_USER"]) == capture.VALUE_LIMIT + 1
    assert items["LW_OUTCOME"] == b"failure" and items["PAM_TYPE"] == b"auth"
    assert "HOME" not in items
    assert len(data) <= capture.RECORD_LIMIT
    with pytest.raises(ValueError, match="not a loginwatch capture"):
        capture.parse(b"junk")


def test_spool_bound_on_count(tmp_path: Path) -> None:
    for i in range(3):
        spool.write(str(tmp_path), f"{i}.cap", b"x", max_events=3, max_bytes=1 << 20)
    with pytest.raises(spool.SpoolFull, match="max_events 3"):
        spool.write(str(tmp_path), "4.cap", b"x", max_events=3, max_bytes=1 << 20)
    with Backlog(str(tmp_path)) as backlog:
        assert [e.label for e in backlog.pending()] == ["0.cap", "1.cap", "2.cap"]


def test_spool_bound_on_bytes(tmp_path: Path) -> None:
    big = b"y" * capture.RECORD_LIMIT
    limit = 3 * capture.RECORD_LIMIT
    spool.write(str(tmp_path), "a.cap", big, max_events=100, max_bytes=limit)
    spool.write(str(tmp_path), "b.cap", big, max_events=100, max_bytes=limit)
    spool.write(str(tmp_path), "c.cap", big, max_events=100, max_bytes=limit)
    with pytest.raises(spool.SpoolFull, match="max_bytes"):
        spool.write(str(tmp_path), "d.cap", big, max_events=100, max_bytes=limit)


def test_spool_files_are_private_and_complete(tmp_path: Path) -> None:
    assert spool.write(str(tmp_path / "s"), "a.cap", b"data", 10, 1 << 20) == 0
    path = tmp_path / "s" / "a.cap"
    assert path.read_bytes() == b"data"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "s").st_mode & 0o777 == 0o700
    assert not list((tmp_path / "s").glob(".*.tmp"))


LOGIN = {b"PAM_TYPE": b"open_session", b"PAM_USER": b"alice", b"PAM_SERVICE": b"sshd"}
FAILURE = {b"PAM_TYPE": b"auth", b"PAM_USER": b"root", b"PAM_SERVICE": b"sshd"}


def _spool_one(
    directory: Path, env: dict[bytes, bytes], outcome: str, n: int, **bounds: int
) -> int:
    name, data = capture.record(env, outcome, n)
    limits = {"max_events": 100, "max_bytes": 1 << 20, **bounds}
    return spool.write(str(directory), name, data, limits["max_events"], limits["max_bytes"])


def _users(directory: Path) -> list[tuple[str, bytes]]:
    """(file name, PAM_USER) of every spooled record, in publishing order."""
    with Backlog(str(directory)) as backlog:
        return [
            (entry.label, capture.parse(backlog.take(entry) or b"")["PAM_USER"])
            for entry in backlog.pending()
        ]


@pytest.mark.parametrize(
    ("pam_type", "outcome", "kept_first"),
    [
        (b"open_session", "", True),
        (b"close_session", "", True),
        (b"auth", "success", True),
        (b"auth", "failure", False),
        (b"auth", "", False),
        (b"account", "", False),
        (b"open_session", "failure", False),
    ],
)
def test_only_logins_and_logouts_are_kept_first(
    pam_type: bytes, outcome: str, kept_first: bool
) -> None:
    _, data = capture.record({b"PAM_TYPE": pam_type}, outcome, 1)
    assert spool.urgent(data) is kept_first


def test_hostile_values_cannot_make_a_failure_a_login() -> None:
    env = dict(FAILURE)
    env[b"PAM_USER"] = b"x\nPAM_TYPE=open_session LW_OUTCOME=success"
    env[b"PAM_RHOST"] = b"PAM_TYPE=open_session"
    _, data = capture.record(env, "failure", 1)
    assert not spool.urgent(data)


def test_a_spool_full_of_failures_still_keeps_the_login(tmp_path: Path) -> None:
    for n in range(3):
        assert _spool_one(tmp_path, FAILURE, "failure", n + 1, max_events=3) == 0
    with pytest.raises(spool.SpoolFull, match="max_events 3"):
        _spool_one(tmp_path, FAILURE, "failure", 4, max_events=3)
    assert _spool_one(tmp_path, LOGIN, "", 5, max_events=3) == 1, "one failure gave way"
    users = _users(tmp_path)
    assert [u for _, u in users] == [b"alice", b"root", b"root"]
    # The oldest failure went; the login is published first.
    assert users[1][0].startswith("00000000000000000002-")
    assert users[2][0].startswith("00000000000000000003-")
    assert ledger.read(str(tmp_path)).total == 1


def test_failures_never_push_out_logins(tmp_path: Path) -> None:
    for n in range(2):
        _spool_one(tmp_path, LOGIN, "", n + 1, max_events=2)
    with pytest.raises(spool.SpoolFull):
        _spool_one(tmp_path, FAILURE, "failure", 3, max_events=2)
    with pytest.raises(spool.SpoolFull, match="all of them logins or logouts"):
        _spool_one(tmp_path, LOGIN, "", 4, max_events=2)
    assert [u for _, u in _users(tmp_path)] == [b"alice", b"alice"]


def test_the_byte_bound_makes_room_too(tmp_path: Path) -> None:
    """A key login is bigger than a failed password: as many failures go as it needs."""
    big_login = dict(LOGIN)
    big_login[b"SSH_AUTH_INFO_0"] = b"publickey ssh-rsa " + b"A" * (capture.AUTH_INFO_LIMIT - 40)
    bounds = {"max_events": 10**6, "max_bytes": capture.RECORD_LIMIT + 2000}
    written = 0
    for n in range(10_000):  # failed passwords until the byte bound refuses one
        try:
            _spool_one(tmp_path, FAILURE, "failure", n + 1, **bounds)
        except spool.SpoolFull as exc:
            assert "max_bytes" in str(exc)
            break
        written += 1
    assert 10 < written < 10_000
    evicted = _spool_one(tmp_path, big_login, "", 10**6, **bounds)
    assert evicted >= 2, "one small failure is not room enough for a key login"
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.cap"))
    assert on_disk <= bounds["max_bytes"]
    assert _users(tmp_path)[0][1] == b"alice"
    assert ledger.read(str(tmp_path)).total == evicted


SECOND_PUBLISHER = """
import sys
from producer.backlog import spool_lock
with spool_lock(sys.argv[1]) as second:
    print("got it" if second else "busy")
"""


def test_publisher_lock_is_exclusive(tmp_path: Path) -> None:
    with spool_lock(str(tmp_path)) as first:
        assert first
        assert spool.try_lock(str(tmp_path)) == spool.LOCK_BUSY
        # Another process, as a second publisher would be (spawned, not forked: pytest may
        # run threads here, and Python 3.12+ warns that a fork beside them may deadlock).
        second = subprocess.run(
            [sys.executable, "-c", SECOND_PUBLISHER, str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        assert second.stdout == "busy\n"
    held = spool.try_lock(str(tmp_path))
    assert held >= 0, "free again"
    with spool_lock(str(tmp_path), held=held) as ours:  # what the hook's child does
        assert ours
        assert spool.try_lock(str(tmp_path)) == spool.LOCK_BUSY


def test_settings_cache_follows_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.RUNTIME_ENV, str(tmp_path / "run"))
    config = tmp_path / "c.toml"
    config.write_text(f'[spool]\ndir = "{tmp_path}/one"\nmax_events = 5\n')
    assert settings.cached(str(config)) is None
    assert settings.load(str(config)) == (f"{tmp_path}/one", 5, 64 << 20)
    assert settings.cached(str(config)) == (f"{tmp_path}/one", 5, 64 << 20)
    time.sleep(0.01)
    config.write_text(f'[spool]\ndir = "{tmp_path}/two"\nmax_events = 7\n')
    assert settings.cached(str(config)) is None, "a changed config must not use the old cache"
    assert settings.load(str(config)).spool_dir == f"{tmp_path}/two"


def test_broken_config_still_spools_to_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(settings.RUNTIME_ENV, str(tmp_path / "run"))
    config = tmp_path / "c.toml"
    config.write_text("[spool]\nmax_events = -1\n")
    fallback = settings.HookSettings(str(tmp_path / "default"), 10, 1 << 20)
    monkeypatch.setattr(settings, "DEFAULT", fallback)
    assert hook._settings(str(config)) == fallback
    assert "$.spool.max_events: expected int >= 1" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (42.9, "42s"), (192, "3m12s"), (3600, "1h00m"), (7500, "2h05m"),
     (273600, "3d04h"), (-5, "0s")],
)  # fmt: skip
def test_spool_ages_read_like_ages(seconds: float, shown: str) -> None:
    from producer.cli import age

    assert age(seconds) == shown


# pam_exec's block as it appends it: its items in its order, PAM_TYPE last.
PAM_EXEC_BLOCK = [
    b"PAM_SERVICE=sshd",
    b"PAM_USER=lwtest",
    b"PAM_TTY=ssh",
    b"PAM_RHOST=127.0.0.1",
    b"PAM_TYPE=open_session",
]
TRUSTED = {
    # ~/.pam_environment, read by a pam_env before the hook, comes first.
    "a duplicated user": (
        [b"PAM_USER=root", b"SSH_CONNECTION=127.0.0.1 1 127.0.0.1 22", *PAM_EXEC_BLOCK],
        {b"PAM_USER": b"lwtest"},
    ),
    "every item duplicated": (
        [
            b"PAM_SERVICE=su",
            b"PAM_TTY=/dev/pts/9",
            b"PAM_RHOST=10.9.9.9",
            b"PAM_TYPE=auth",
            *PAM_EXEC_BLOCK,
        ],
        {b"PAM_SERVICE": b"sshd", b"PAM_TTY": b"ssh", b"PAM_TYPE": b"open_session"},
    ),
    # sshd sets no PAM_RUSER: pam_exec has no copy, so the user's must not count.
    "an item pam_exec does not set": ([b"PAM_RUSER=admin", *PAM_EXEC_BLOCK], {b"PAM_RUSER": None}),
    # A user tail that looks like a block of its own ends with PAM_TYPE too.
    "a forged block before the real one": (
        [b"PAM_SERVICE=su", b"PAM_USER=root", b"PAM_TYPE=auth", *PAM_EXEC_BLOCK],
        {b"PAM_USER": b"lwtest", b"PAM_SERVICE": b"sshd", b"PAM_TYPE": b"open_session"},
    ),
    "a forged item right before the block": (
        [b"PAM_RUSER=admin", b"PAM_SERVICE=sshd", b"PAM_TYPE=auth"],
        {b"PAM_RUSER": None, b"PAM_SERVICE": b"sshd", b"PAM_TYPE": b"auth"},
    ),
    "sshd's own variables stay": (
        [b"SSH_AUTH_INFO_0=publickey ssh-ed25519 AAAA=", b"X=1=2", *PAM_EXEC_BLOCK],
        {b"SSH_AUTH_INFO_0": b"publickey ssh-ed25519 AAAA=", b"SSH_CONNECTION": None},
    ),
    # Names the hook never reads are skipped unparsed, however many there are.
    "the rest is skipped": (
        [*(b"X%d=%d" % (n, n) for n in range(5000)), b"LD_PRELOAD=/x.so", *PAM_EXEC_BLOCK],
        {b"X1": None, b"LD_PRELOAD": None, b"PAM_USER": b"lwtest"},
    ),
    # Not pam_exec's layout (a run by hand): the last copy counts.
    "no block": (
        [b"PAM_TYPE=open_session", b"PAM_USER=a", b"PAM_USER=b", b"junk"],
        {b"PAM_USER": b"b", b"PAM_TYPE": b"open_session"},
    ),
    "empty": ([], {b"PAM_USER": None}),
}


@pytest.mark.parametrize(("entries", "expected"), TRUSTED.values(), ids=TRUSTED.keys())
def test_the_hook_takes_the_pam_items_pam_exec_set_itself(
    entries: list[bytes], expected: dict[bytes, bytes | None]
) -> None:
    env = capture.trusted(entries)
    assert {key: env.get(key) for key in expected} == expected


def test_without_proc_the_environment_is_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAM_USER", "alice")
    assert capture.environment(str(tmp_path / "no-proc"))[b"PAM_USER"] == b"alice"


_NAMES = st.sampled_from([*capture.PAM_EXEC_ITEMS, b"SSH_CONNECTION", b"LD_PRELOAD", b"X"])
_VALUES = st.binary(max_size=20).map(lambda v: v.replace(b"\0", b""))


@given(
    user=st.lists(st.tuples(_NAMES, _VALUES), max_size=12),
    items=st.lists(st.sampled_from(capture.PAM_EXEC_ITEMS[1:-1]), unique=True),
    values=st.lists(_VALUES, min_size=6, max_size=6),
)
def test_no_pam_environment_can_pass_for_pam_execs_items(
    user: list[tuple[bytes, bytes]], items: list[bytes], values: list[bytes]
) -> None:
    # Whatever a user's file puts first (any PAM_* names, in any order, even a
    # block of its own), the items are exactly those pam_exec appended.
    chosen = [b"PAM_SERVICE", *sorted(items, key=capture.PAM_EXEC_ITEMS.index), b"PAM_TYPE"]
    block = dict(zip(chosen, values))
    entries = [name + b"=" + value for name, value in user]
    entries += [name + b"=" + value for name, value in block.items()]
    env = capture.trusted(entries)
    assert {k: v for k, v in env.items() if k in capture.PAM_EXEC_ITEMS} == block
