"""Directories the hook writes as root: used only when no one else can control them.

The spool and the settings cache live in directories root writes into on every
login. If another user could write to one, that user could plant a symlink
(``dropped`` → ``/etc/shadow``), a record of their own, or settings that send
the spool elsewhere. So a directory is used only when it is a real directory
(not a symlink), owned by the user we run as (root, for the hook) and not
writable by group or others; and every file in it is opened relative to the
directory's descriptor with ``O_NOFOLLOW``, so a path swapped after the check
changes nothing. This module imports only ``os``.
"""

from __future__ import annotations

import os

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in place of a file must not hang the login.
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
UPDATE = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
WRITE = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # an existing file only
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TMP_SUFFIX = ".tmp"  # ``write_new``'s temp file: "." + name + TMP_SUFFIX
_S_IFMT = 0o170000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000


class UnsafePath(OSError):
    """A directory or file someone else could control; the message says what to fix."""


def open_dir(path: str, create: bool = True) -> int:
    """A descriptor of directory ``path`` once it is safe (made 0700 when missing).

    Raises:
        UnsafePath: a symlink, not a directory, owned by another user, or
            writable by group or others.
        OSError: it cannot be created or opened.
    """
    if create and not os.path.lexists(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePath(
                f"{path} is a symlink: make it a directory (root, mode 0700)"
            ) from None
        raise exc from None
    try:
        _check_dir(path, os.fstat(fd))
    except UnsafePath:
        os.close(fd)
        raise
    return fd


def _check_dir(path: str, st: os.stat_result) -> None:
    uid = os.geteuid()
    if st.st_uid != uid:
        raise UnsafePath(
            f"{path} is owned by uid {st.st_uid}, not by uid {uid} who writes it:"
            f" chown {uid} {path}"
        )
    if st.st_mode & 0o022:
        raise UnsafePath(
            f"{path} is writable by group or others (mode {st.st_mode & 0o7777:04o}):"
            f" chmod 700 {path}"
        )


def open_file(dir_fd: int, name: str, flags: int, mode: int = 0o600) -> int:
    """Open ``name`` in the directory ``dir_fd`` without following a symlink.

    Raises:
        UnsafePath: ``name`` is not a regular file (a FIFO, a device…).
        OSError: it cannot be opened (ELOOP for a symlink).
    """
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if _is_link(dir_fd, name):
            raise UnsafePath(f"{name} is a symlink: not followed") from None
        raise exc from None
    if os.fstat(fd).st_mode & _S_IFMT != _S_IFREG:
        os.close(fd)
        raise UnsafePath(f"{name} is not a regular file")
    return fd


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode & _S_IFMT == _S_IFLNK
    except OSError:
        return False


def write_new(dir_fd: int, name: str, parts: tuple[bytes, ...]) -> None:
    """Create ``name`` in ``dir_fd`` durably and whole: written to ``.NAME.tmp``, synced,
    renamed, the directory synced. A reader sees all of it or nothing.

    Raises:
        UnsafePath: something that is no regular file holds the temp name.
        OSError: it cannot be written (no inode or block left …); the temp file is gone.
    """
    tmp = "." + name + TMP_SUFFIX
    fd = open_file(dir_fd, tmp, CREATE)
    try:
        for part in parts:
            if os.write(fd, part) != len(part):
                raise OSError("short write")
        os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
