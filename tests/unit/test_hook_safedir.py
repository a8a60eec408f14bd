"""The directories root writes on a host: someone else's directory or symlink is never used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer import backlog, capture, ledger, safedir, settings, slots, spool

OTHER_UID = 4242  # a user that is not us (tests/support/sshd.py's test user)
LOGIN = {b"PAM_TYPE": b"open_session", b"PAM_USER": b"alice"}


def _record(n: int = 1) -> tuple[str, bytes]:
    return capture.record(LOGIN, "", n)


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777, 0o720, 0o702])
def test_a_spool_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(safedir.UnsafePath, match=r"writable by group or others .*chmod 700"):
        spool.write(str(directory), *_record(), 10, 1 << 20)
    with pytest.raises(safedir.UnsafePath):
        ledger.add(str(directory), [])
    with pytest.raises(safedir.UnsafePath):
        backlog.Backlog(str(directory))
    with pytest.raises(safedir.UnsafePath):
        spool.try_lock(str(directory))
    assert list(directory.iterdir()) == []


def test_a_spool_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    os.chown(directory, OTHER_UID, OTHER_UID)
    with pytest.raises(safedir.UnsafePath, match=f"owned by uid {OTHER_UID}, not by uid 0"):
        spool.write(str(directory), *_record(), 10, 1 << 20)
    assert list(directory.iterdir()) == []


def test_a_symlinked_spool_dir_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "spool").symlink_to(target)
    with pytest.raises(safedir.UnsafePath, match="is a symlink"):
        spool.write(str(tmp_path / "spool"), *_record(), 10, 1 << 20)
    assert list(target.iterdir()) == []


def test_a_symlinked_counter_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_bytes(b"root:$6$secret:19000::::::\n")
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    (directory / ledger.FILE).symlink_to(victim)
    with pytest.raises(safedir.UnsafePath, match="dropped is a symlink: not followed"):
        ledger.add(str(directory), [], uncounted=1)
    with pytest.raises(safedir.UnsafePath, match="dropped is a symlink: not followed"):
        ledger.read(str(directory))
    assert victim.read_bytes() == b"root:$6$secret:19000::::::\n"


def test_a_fifo_in_place_of_the_ledger_does_not_hang(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / ledger.FILE)
    with pytest.raises(safedir.UnsafePath, match="not a regular file"):
        ledger.add(str(directory), [], uncounted=1)


def test_a_fifo_in_place_of_the_slots_does_not_hang(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    os.mkfifo(directory / slots.FILE)
    with pytest.raises(safedir.UnsafePath, match="not a regular file"):
        spool.write(str(directory), *_record(), 10, 1 << 20)
    with pytest.raises(safedir.UnsafePath, match="not a regular file"):
        backlog.Backlog(str(directory))


def test_symlinked_slots_are_not_written_through(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(bytes(slots.SIZE * 2))
    (directory / slots.FILE).symlink_to(victim)
    with pytest.raises(safedir.UnsafePath, match="slots is a symlink: not followed"):
        spool.write(str(directory), *_record(), 10, 1 << 20)
    with pytest.raises(safedir.UnsafePath, match="slots is a symlink"):
        backlog.Backlog(str(directory))
    assert victim.read_bytes() == bytes(slots.SIZE * 2)


def test_a_symlinked_record_is_not_read(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    secret = tmp_path / "secret"
    secret.write_bytes(capture.MAGIC + b"LW_ID=00\0PAM_USER=from-a-file-root-reads")
    link = directory / "00000000000000000001-x.cap"
    link.symlink_to(secret)
    with backlog.Backlog(str(directory)) as spooled:
        [entry] = spooled.pending()
        with pytest.raises(safedir.UnsafePath, match="symlink"):
            spooled.take(entry)
        # Set aside as it is: the link moves, its target stays.
        moved = spooled.set_aside(entry, b"")
    assert os.path.islink(moved) and secret.exists()


def test_a_symlink_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    name, data = _record()
    (directory / f".{name}.tmp").symlink_to(victim)
    with pytest.raises(OSError):
        spool.write(str(directory), name, data, 10, 1 << 20)
    assert victim.read_text() == "keep"


# --- the settings cache (/run/loginwatch) -----------------------------------


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(settings.RUNTIME_ENV, str(tmp_path / "run"))
    path = tmp_path / "c.toml"
    path.write_text(f'[spool]\ndir = "{tmp_path}/spool"\nmax_events = 5\n')
    return path


def test_a_cache_dir_others_can_write_is_not_believed(config: Path, tmp_path: Path) -> None:
    assert settings.load(str(config)).max_events == 5
    assert settings.cached(str(config)) is not None
    (tmp_path / "run").chmod(0o777)
    with pytest.raises(safedir.UnsafePath, match="writable by group or others"):
        settings.cached(str(config))


def test_the_hook_parses_the_config_when_the_cache_dir_is_unsafe(
    config: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from producer import hook

    (tmp_path / "run").mkdir(mode=0o777)
    (tmp_path / "run").chmod(0o777)  # past the umask
    planted = settings.cache_path(str(config))
    Path(planted).write_bytes(b"LWSET1\0forged")
    assert hook._settings(str(config)) == (f"{tmp_path}/spool", 5, 64 << 20)
    assert "settings cache not used" in capfd.readouterr().err
    assert Path(planted).read_bytes() == b"LWSET1\0forged", "nothing written there either"


def test_a_symlinked_cache_file_is_not_followed(config: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    Path(settings.cache_path(str(config))).symlink_to(victim)
    assert settings.cached(str(config)) is None
    settings.load(str(config))  # replaces the link with a real cache file
    assert victim.read_text() == "keep"
    assert not os.path.islink(settings.cache_path(str(config)))
    assert settings.cached(str(config)) == (f"{tmp_path}/spool", 5, 64 << 20)
