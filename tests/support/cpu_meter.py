"""The CPU a batch of commands costs, with every process they leave behind.

The hook forks a detached publisher and exits: the publisher is no child of ours to
wait for. ``cpu_of`` runs the commands in a forked meter process that is a child
subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``): orphans re-parent to it, it waits for
every descendant, detached ones included, and reports ``RUSAGE_CHILDREN``: the user
and system CPU of everything the commands started, until the last of it ended.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Cpu:
    seconds: float  # user + system, every descendant
    processes: int  # how many were reaped, detached ones included


def cpu_of(
    commands: Sequence[Sequence[str]],
    env: Mapping[str, str],
    parallel: int = 1,
    timeout: float = 120,
) -> Cpu:
    """Run ``commands`` (``parallel`` at a time, in waves) and measure them.

    Raises:
        RuntimeError: the meter failed or a command exited non-zero.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the meter
        os.close(read_end)
        status = 1
        try:
            report = _meter(commands, env, parallel, timeout)
            os.write(write_end, json.dumps(report).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not raw:
        raise RuntimeError(f"the CPU meter failed (status {status})")
    report = json.loads(raw)
    if report["failed"]:
        raise RuntimeError(f"{report['failed']} command(s) exited non-zero")
    return Cpu(report["seconds"], report["processes"])


def _meter(
    commands: Sequence[Sequence[str]], env: Mapping[str, str], parallel: int, timeout: float
) -> dict[str, float]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    failed = 0
    for start in range(0, len(commands), parallel):
        wave = [
            subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for argv in commands[start : start + parallel]
        ]
        failed += sum(1 for proc in wave if proc.wait(timeout) != 0)
    processes = len(commands)
    while True:  # the orphans: detached publishers, re-parented to us
        try:
            os.wait()
        except ChildProcessError:
            break
        processes += 1
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": usage.ru_utime + usage.ru_stime, "processes": processes, "failed": failed}
