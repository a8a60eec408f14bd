"""Run an install script while another user watches its --root tree for readable secrets.

``watched_install`` starts ``tests/support/inotify_reader.py`` as ``nobody`` on the tree,
then the install script with its secret inputs (``--password-file``,
``--config``) as FIFOs. For each FIFO it waits until a process has it open and
is writing a file under the tree (the file the secret is going to), lets the
watcher catch up, and only then sends the secret. So the watcher has the file
in front of it, at the very moment it was created, before the first byte: any
mode that lets another user open it shows up as the secret in what the watcher
read, every time, with no race to win.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.deploy_host import REPO

READER = Path(__file__).with_name("inotify_reader.py")
NOBODY = 65534
BOUND_S = 60.0


@dataclass(frozen=True)
class Watched:
    output: str  # the install script's stdout + stderr
    returncode: int
    events: list[dict[str, Any]]  # what the watcher reported

    def read_by_other_user(self) -> bytes:
        """Everything the other user could read, from every file it held open."""
        return b"".join(bytes.fromhex(e["data"]) for e in self.events if e["event"] == "read")

    def opened(self) -> list[str]:
        """Every file the other user could open, but the PAM files it may read anyway."""
        return [
            e["path"] for e in self.events if e["event"] == "opened" and "/pam.d/" not in e["path"]
        ]


class Watcher:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-I", "-c", READER.read_text(), str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait_for("ready")
        self.syncs = 0

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, event: str, **fields: object) -> None:
        deadline = time.monotonic() + BOUND_S
        while True:
            item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.events.append(item)
            if item["event"] == event and all(item.get(k) == v for k, v in fields.items()):
                return

    def sync(self) -> None:
        """Return once the watcher has handled every event before this call."""
        self.syncs += 1
        marker = self.root / f".sync-{self.syncs}"
        marker.touch()
        self.wait_for("synced", name=str(self.syncs))
        marker.unlink()

    def finish(self) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=BOUND_S)
        while not self.lines.empty():
            self.events.append(self.lines.get())
        return self.events


def writer_of(fifo: Path, root: Path) -> Path | None:
    """A file under ``root`` that a process reading ``fifo`` has open, if any."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = Path("/proc", pid, "fd")
        try:
            targets = [os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)]
        except OSError:
            continue
        if str(fifo) not in targets:
            continue
        for target in targets:
            if target.startswith(f"{root}/") and Path(target).is_file():
                return Path(target)
    return None


def open_writer(fifos: list[Path], proc: subprocess.Popen[str]) -> tuple[Path, int]:
    """The first of ``fifos`` that the install script opens for reading, and its write end."""
    deadline = time.monotonic() + BOUND_S
    while True:
        for fifo in fifos:
            try:
                return fifo, os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the install script never read {fifos}")
        time.sleep(0.01)


def watched_install(
    script: Path, root: Path, fifo_dir: Path, secrets: dict[str, bytes], *args: str | Path
) -> Watched:
    """Run ``script --root ROOT ARGS``, each ``secrets`` option fed through a FIFO.

    ``secrets`` maps an option (``--password-file``) to the bytes it passes.
    ``root`` must be reachable by ``nobody`` (``tests.support.deploy_host.traversable_dir``).
    The script's $TMPDIR is ROOT/tmp, under the watch too: a copy it keeps there (the host
    config, read once before it is checked) is watched as closely as the files it installs.
    """
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    fifos = {}
    for option, data in secrets.items():
        fifo = fifo_dir / option.strip("-")
        os.mkfifo(fifo, 0o600)
        fifos[fifo] = data
    watcher = Watcher(root)
    command = ["sh", str(script), "--root", str(root), *map(str, args)]
    for option in secrets:
        command += [option, str(fifo_dir / option.strip("-"))]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, "TMPDIR": str(root / "tmp")},
    )  # fmt: skip
    try:
        while fifos:
            fifo, fd = open_writer(list(fifos), proc)
            _feed(fifo, fd, fifos.pop(fifo), root=root, proc=proc, watcher=watcher)
        output, _ = proc.communicate(timeout=BOUND_S)
        events = watcher.finish()
    finally:
        for child in (proc, watcher.proc):
            if child.poll() is None:
                child.kill()
                child.wait()
    return Watched(output, proc.returncode, events)


def _feed(
    fifo: Path, fd: int, data: bytes, *, root: Path, proc: subprocess.Popen[str], watcher: Watcher
) -> None:
    os.set_blocking(fd, True)
    deadline = time.monotonic() + BOUND_S
    while writer_of(fifo, root) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"nothing under {root} is being written from {fifo}")
        time.sleep(0.01)
    watcher.sync()
    os.write(fd, data)
    os.close(fd)
