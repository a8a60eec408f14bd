"""Files root may trust: a config that only root (or its reader) can change, and secrets
that only their owner can read.

The hook runs as root and takes from the config where to spool, which broker to tell and
which file to send as the password; the central side reads its passwords from files. So
every such file, and every directory and symlink on the way to it, must be out of other
users' reach: a file they could write or swap is refused with one line that says how to
fix it.
"""

from __future__ import annotations

import os
import stat
from typing import Final

from schemas.errors import ConfigError


def read_config_file(path: str | os.PathLike[str]) -> str:
    """The text of the config file at ``path``, once it is known that only root (or its
    reader) could have put it there (``_check_config_file``).

    Raises:
        ConfigError: unreadable, too long, no UTF-8, or changeable by someone else.
    """
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the reader (the hook, as root).
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    try:
        _check_config_file(os.fspath(path), os.fstat(fd))
        with os.fdopen(fd, "rb", closefd=False) as file:
            # One byte past the bound tells a huge file from one that fits.
            raw = file.read(CONFIG_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    finally:
        os.close(fd)
    if len(raw) > CONFIG_LIMIT:
        raise ConfigError(f"{path}: longer than {CONFIG_LIMIT} bytes: not a loginwatch config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return text


# A config is a few KiB; the bound keeps a wrong --config (a log, a device) from
# costing the hook its time or memory.
CONFIG_LIMIT: Final = 1024 * 1024


def _check_config_file(path: str, st: os.stat_result) -> None:
    """Refuse a config that someone other than root (or its reader) could change.

    The hook runs as root and takes from this file where to spool, which broker
    to tell and which file to send as the password: a user who can write it, or
    swap it in a directory they can write, could silence the alerts about
    their own logins or have root read and send another root file.

    Raises:
        ConfigError: no regular file, or it or a directory on its real path is
            owned by another user or writable by group or others.
    """
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: cannot read config: not a regular file")
    why = _controlled_by_others(st, path)
    if why:
        raise ConfigError(f"{path}: cannot use config: {why}")
    why = _swappable(path, st)
    if why:
        raise ConfigError(f"{path}: cannot use config: {why}")


def _swappable(path: str, st: os.stat_result) -> str:
    """Why someone else could put another file at ``path`` ('' when no one can).

    Follows the path name by name as the kernel does: every directory passed
    through, and every symlink (its owner, and its target, in turn), must be
    root's or ours and not writable by others; the end must be the file
    ``st`` describes (the one opened).
    """
    hops = [0]
    try:
        end = _walk("/", os.path.abspath(path), hops)
    except _Swappable as exc:
        return str(exc)
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror}"
    if (end.st_dev, end.st_ino) != (st.st_dev, st.st_ino):
        return "it was replaced while being read"
    return ""


class _Swappable(Exception):
    pass


def _walk(directory: str, path: str, hops: list[int]) -> os.stat_result:
    """Resolve ``path`` (absolute, or relative to ``directory``), checking each step."""
    if path.startswith("/"):
        directory = "/"
        _checked_dir(directory)
    names = [name for name in path.split("/") if name not in ("", ".")]
    st = os.lstat(directory)
    for index, name in enumerate(names):
        here = os.path.dirname(directory) if name == ".." else os.path.join(directory, name)
        st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode):
            hops[0] += 1
            if hops[0] > 40:
                raise _Swappable(f"{here}: too many symlinks")
            if st.st_uid not in (0, os.geteuid()):
                raise _Swappable(f"{here} is a symlink owned by {_user(st.st_uid)}")
            st = _walk(directory, os.readlink(here), hops)
            here = os.path.realpath(here)
        last = index == len(names) - 1
        if not last:
            _checked_dir(here)
        directory = here
    return os.stat(directory) if stat.S_ISLNK(st.st_mode) else st


def _checked_dir(directory: str) -> None:
    why = _controlled_by_others(os.stat(directory), directory, sticky_ok=True)
    if why:
        raise _Swappable(why)


def _controlled_by_others(st: os.stat_result, path: str, sticky_ok: bool = False) -> str:
    """Why someone other than root or us could change ``path`` ('' when no one can)."""
    reader = os.geteuid()
    if st.st_uid not in (0, reader):
        return f"{path} is owned by {_user(st.st_uid)}, not by root: chown root {path}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return (
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}):"
            f" chmod go-w {path}"
        )
    return ""


# The central side's service user: root may use its secrets (`loginwatch setup`
# run as root reads the central password file, which the worker, as this user, owns).
SERVICE_USER: Final = "loginwatch"


def read_secret(path: str, key: str) -> str:
    """The first line of a secret file that only its owner, the reader, may read.

    Raises:
        ConfigError: missing file, no regular file, one owned by another user,
            or one that group or others can read, naming ``key``
            (e.g. ``$.smtp.password_file``).
    """
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _check_secret(path, key, st)
        raw = os.read(fd, 4096)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return raw.decode("utf-8", "replace").splitlines()[0] if raw.strip() else ""


def read_secret_lines(path: str, key: str) -> tuple[str, ...]:
    """Every non-empty line of a secret file (``read_secret``'s checks): several signing
    keys at once, so that a key can rotate without a gap.

    Raises:
        ConfigError: as ``read_secret``, or the file holds no line at all.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    try:
        _check_secret(path, key, os.fstat(fd))
        raw = os.read(fd, 16384)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    lines = tuple(line.strip() for line in raw.decode("utf-8", "replace").splitlines())
    if not any(lines):
        raise ConfigError(f"{key}: {path} is empty: write the secret in it, one per line")
    return tuple(line for line in lines if line)


def _check_secret(path: str, key: str, st: os.stat_result) -> None:
    """Raises: ConfigError: the file is no regular file, not ours, or too open."""
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{key}: {path} is not a regular file")
    reader = os.geteuid()
    if st.st_uid != reader and not (reader == 0 and st.st_uid == _service_uid()):
        raise ConfigError(
            f"{key}: {path} is owned by {_user(st.st_uid)}, not by {_user(reader)} who reads it:"
            " chown it, or run as its owner"
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{key}: {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o});"
            " chmod 600 it"
        )
    # In a directory others can write, they could swap in a symlink to another
    # root-only file, whose first line root would then send as the password.
    why = _swappable(path, st)
    if why:
        raise ConfigError(f"{key}: {path}: {why}")


def _service_uid() -> int | None:
    import pwd  # noqa: PLC0415 - only where a secret is read

    try:
        return pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        return None


def _user(uid: int) -> str:
    import pwd  # noqa: PLC0415

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
