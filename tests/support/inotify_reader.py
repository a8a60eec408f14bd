"""Another user who watches a directory tree with inotify and opens every file in it.

Run as an unprivileged user (``tests.support.secret_watch`` starts it as ``nobody``)
with the tree's root as its argument. It opens each file the moment it learns
of it (created, moved in, chmod-ed, written) and keeps every descriptor it got:
a file that was readable for one instant stays readable through it, which is
how a secret written before its chmod leaks. Lines on stdout, JSON each:

- ``{"event": "ready"}`` once the tree is watched;
- ``{"event": "synced", "name": N}`` when a file named ``.sync-N`` appears in
  the root: every earlier event has been handled (inotify keeps their order);
- ``{"event": "opened"|"denied", "path": P, "mode": M}`` per file it tried;
- after ``done`` on stdin: ``{"event": "read", "path": P, "data": HEX}`` for
  every descriptor it holds, read from offset 0.

Standalone (the standard library only): it runs as ``python3 -I -c SOURCE``.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import struct
import sys

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000
IN_ISDIR = 0x40000000
MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
HEADER = struct.Struct("iIII")


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


class Reader:
    def __init__(self, root: str) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.root = root
        self.dirs: dict[int, str] = {}
        self.held: list[tuple[str, int]] = []
        self.inodes: set[tuple[int, int]] = set()

    def watch(self, path: str) -> None:
        """Watch ``path`` and, recursively, what is in it already."""
        wd = self.libc.inotify_add_watch(self.fd, path.encode(), MASK)
        if wd < 0:
            say(event="unwatchable", path=path, error=os.strerror(ctypes.get_errno()))
            return
        self.dirs[wd] = path
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            self.seen(os.path.join(path, name))

    def seen(self, path: str) -> None:
        try:
            info = os.lstat(path)
        except OSError:
            return
        if os.path.isdir(path) and not os.path.islink(path):
            if path not in self.dirs.values():
                self.watch(path)
            return
        if not os.path.isfile(path) or os.path.islink(path):
            return
        if (info.st_dev, info.st_ino) in self.inodes:
            return
        mode = oct(info.st_mode & 0o7777)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as exc:
            say(event="denied", path=path, mode=mode, error=exc.strerror)
            return
        self.inodes.add((info.st_dev, info.st_ino))
        self.held.append((path, fd))
        say(event="opened", path=path, mode=mode)

    def drain(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = HEADER.unpack_from(data, offset)
            offset += HEADER.size
            name = data[offset : offset + length].rstrip(b"\0").decode()
            offset += length
            if mask & IN_Q_OVERFLOW:
                say(event="overflow")
                continue
            parent = self.dirs.get(wd)
            if parent is None or not name:
                continue
            if parent == self.root and name.startswith(".sync-"):
                if mask & IN_CREATE:
                    say(event="synced", name=name[len(".sync-") :])
                continue
            self.seen(os.path.join(parent, name))

    def finish(self) -> None:
        for path, fd in self.held:
            say(event="read", path=path, data=os.pread(fd, 1 << 20, 0).hex())


def main() -> int:
    reader = Reader(sys.argv[1])
    reader.watch(sys.argv[1])
    say(event="ready")
    while True:
        ready, _, _ = select.select([reader.fd, sys.stdin], [], [])
        if reader.fd in ready:
            reader.drain()
        if sys.stdin in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "done":
                reader.drain()
                reader.finish()
                return 0


if __name__ == "__main__":
    raise SystemExit(main())
