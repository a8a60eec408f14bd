"""What the hook's foreground needs of the config, without reading TOML.

Importing ``tomllib`` and ``msgspec`` costs ~25 ms, more than the rest of the
foreground. So the first run after a config change parses the file and leaves
the three values the foreground needs in a small cache file, stamped with the
config file's (inode, size, mtime) like a ``.pyc``; every later run only
``stat``\\s the config and reads the cache, from a directory no one else can
write (``producer.safedir``). This module imports only ``os``.
"""

from __future__ import annotations

import os

from producer import safedir, shared

RUNTIME_DIR = "/run/loginwatch"
RUNTIME_ENV = "LOGINWATCH_RUNTIME_DIR"
_MAGIC = b"LWSET1"


class HookSettings(tuple[str, int, int]):
    """(spool_dir, max_events, max_bytes); a plain tuple: ``typing`` costs 2 ms to import."""

    __slots__ = ()

    def __new__(cls, spool_dir: str, max_events: int, max_bytes: int) -> HookSettings:
        return super().__new__(cls, (spool_dir, max_events, max_bytes))

    @property
    def spool_dir(self) -> str:
        return self[0]

    @property
    def max_events(self) -> int:
        return self[1]

    @property
    def max_bytes(self) -> int:
        return self[2]


# The defaults of schemas.config.SpoolConfig, repeated here so that a broken
# config still lets the foreground spool the event (a test keeps them equal).
DEFAULT = HookSettings("/var/spool/loginwatch", 10_000, 64 * 1024 * 1024)


def cache_path(config_path: str) -> str:
    # Under PAM the environment may be the user's (see shared.under_pam).
    runtime = RUNTIME_DIR if shared.under_pam() else os.environ.get(RUNTIME_ENV, RUNTIME_DIR)
    mangled = os.path.abspath(config_path).replace("%", "%25").replace("/", "%2F")
    return os.path.join(runtime, "hook-settings-" + mangled)


def _stamp(config_path: str) -> bytes:
    st = os.stat(config_path)
    return b"%d:%d:%d" % (st.st_ino, st.st_size, st.st_mtime_ns)


def cached(config_path: str) -> HookSettings | None:
    """The cached settings when they match the config file as it is now.

    Raises:
        UnsafePath: the cache directory could be written by someone else; its
            files are not to be believed (nor written).
    """
    try:
        stamp = _stamp(config_path)
    except OSError:
        return None
    directory, name = os.path.split(cache_path(config_path))
    try:
        dir_fd = safedir.open_dir(directory, create=False)
    except FileNotFoundError:
        return None
    try:
        fd = safedir.open_file(dir_fd, name, safedir.READ)
    except OSError:  # missing, or a symlink: not followed, replaced by the next load
        return None
    finally:
        os.close(dir_fd)
    try:
        parts = os.read(fd, 8192).split(b"\0")
    finally:
        os.close(fd)
    if len(parts) != 6 or parts[0] != _MAGIC or parts[1] != stamp:
        return None
    if parts[2] != os.fsencode(os.path.abspath(config_path)):
        return None
    return HookSettings(os.fsdecode(parts[3]), int(parts[4]), int(parts[5]))


def load(config_path: str, cache: bool = True) -> HookSettings:
    """Settings from the config file itself (slow path), refreshing the cache.

    Raises:
        ConfigError: the config cannot be used.
    """
    from schemas.config import load_config  # noqa: PLC0415 - the slow path only

    stamp = _stamp(config_path) if os.path.exists(config_path) else b""
    spool = load_config(config_path).spool
    settings = HookSettings(spool.dir, spool.max_events, spool.max_bytes)
    if stamp and cache:
        _write_cache(config_path, stamp, settings)
    return settings


def _write_cache(config_path: str, stamp: bytes, settings: HookSettings) -> None:
    directory, name = os.path.split(cache_path(config_path))
    data = b"\0".join(
        (
            _MAGIC,
            stamp,
            os.fsencode(os.path.abspath(config_path)),
            os.fsencode(settings.spool_dir),
            b"%d" % settings.max_events,
            b"%d" % settings.max_bytes,
        )
    )
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        dir_fd = safedir.open_dir(directory)
    except OSError:
        return  # only a cache: the next run parses the config again
    try:
        fd = safedir.open_file(dir_fd, tmp, safedir.CREATE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        # rename replaces a symlink planted at the name, never what it points to.
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
