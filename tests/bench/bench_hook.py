"""Benchmark: what the hook costs a login. Figures, side by side in one run; no assertions.

The hook is measured as an operator installs it: a regular (not editable) venv with
the ``python -I`` launcher that deploy/install-host.sh writes. (The development venv's
editable install adds a ``.pth`` import finder to every interpreter start.)

- the hook's foreground against ``python -c pass`` of the same interpreter;
- a loopback ``ssh host true`` through a real sshd with the hook in the session
  stack against the same sshd without it (the PAM file is swapped between runs);
- a broker that accepts TCP and never answers: the hook's foreground, and
  whether every event arrives once the broker is back;
- a PAM environment of 15,000 variables (~1.6 MB, near what execve takes at all): the
  hook's foreground against ``python -c pass`` with the same environment;
- a password spray: the CPU of 30 failed passwords (10 at a time, as sshd's
  ``MaxStartups`` lets them in), the hooks and every publisher they started (reaped
  as a child subreaper: they are detached), against 30 bare ``python -I -c pass``.

Run alone: ``.venv/bin/python -m tests.bench.bench_hook``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from producer.backlog import spool_lock
from tests.bench.bench_support import bench_vhost, median_ms
from tests.support.cpu_meter import cpu_of
from tests.support.hookrun import (
    FAILED_PASSWORD,
    PAM_ENV,
    SilentListener,
    TapQueue,
    run_hook,
    spooled,
    wait_for,
    write_config,
)
from tests.support.services import Vhost
from tests.support.sshd import ACCOUNT_STACK, AUTH_STACK, SESSION_STACK, TEST_USER, Sshd, hook_line

ROUNDS = 40
SSH_ROUNDS = int(os.environ.get("LW_SSH_ROUNDS", "20"))


def _time_cmd(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.Popen(argv, stdin=subprocess.DEVNULL).wait()
    return time.perf_counter() - start


def installed_hook(work: Path) -> tuple[str, str]:
    """A regular venv with loginwatch installed, and its launcher: (python, hook)."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # Build from a copy: pip building in the work tree leaves a build/ directory there
    # whose stale modules then shadow the editable install's.
    source = work / "source"
    shutil.copytree(
        Path(__file__).resolve().parents[2],
        source,
        ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "demo-out"),
    )
    # As the installer does: the locked pip, the host's locked pins, then loginwatch alone.
    for lock in ("build", "host"):
        pins = str(source / "requirements" / f"{lock}.txt")
        subprocess.run([python, "-m", "pip", "install", "-q", "--require-hashes", "-r", pins],
                       check=True)  # fmt: skip
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
    )
    hook = work / "loginwatch-hook"
    # The same launcher as deploy/install-host.sh's install_hook.
    hook.write_text(
        f"#!{python} -I\nimport sys\nfrom producer.hook import main\nsys.exit(main())\n"
    )
    hook.chmod(0o755)
    return python, str(hook)


def foreground(vhost: Vhost, work: Path, python: str, hook_path: str) -> dict[str, float]:
    """Hook foreground vs ``python -c pass`` of the same interpreter, interleaved.

    The spool drains between runs, so no publisher competes with the next one.
    """
    config = write_config(work, vhost.url())
    run_hook(config, hook=hook_path)  # fills the settings cache, as a first login does
    wait_for(lambda: not spooled(work))
    bare: list[float] = []
    hook: list[float] = []
    for _ in range(ROUNDS):
        bare.append(_time_cmd([python, "-c", "pass"]))
        hook.append(run_hook(config, hook=hook_path).seconds)
        wait_for(lambda: not spooled(work), timeout=10, step=0.01)
    return {
        "python_pass_ms": median_ms(bare),
        "hook_foreground_ms": median_ms(hook),
        "hook_vs_python_pass": statistics.median(hook) / statistics.median(bare),
    }


def ssh_login(vhost: Vhost, work: Path, python: str, hook_path: str) -> dict[str, float]:
    """``ssh host true`` with the hook (open and close) against without, same sshd."""
    config = write_config(work, vhost.url())
    plain = AUTH_STACK + ACCOUNT_STACK + SESSION_STACK
    hooked = plain + hook_line(hook_path, config)
    without: list[float] = []
    with_hook: list[float] = []
    with Sshd(plain) as sshd:
        pam_file = sshd.ns.pam_dir / "sshd"
        sshd.ssh(TEST_USER)  # warm up
        for _ in range(SSH_ROUNDS):
            pam_file.write_text(plain)
            without.append(sshd.ssh(TEST_USER))
            pam_file.write_text(hooked)
            with_hook.append(sshd.ssh(TEST_USER))
            wait_for(lambda: not spooled(work), timeout=10, step=0.01)
    return {
        "ssh_without_hook_ms": median_ms(without),
        "ssh_with_hook_ms": median_ms(with_hook),
        "ssh_with_vs_without": statistics.median(with_hook) / statistics.median(without),
    }


def silent_broker(vhost: Vhost, work: Path, python: str, hook_path: str) -> dict[str, float]:
    """Hooks against a listener that never answers; then the broker is back: any lost?"""
    runs = 10
    times: list[float] = []
    tap = TapQueue(vhost.url())
    try:
        with SilentListener() as port:
            config = write_config(work, vhost.url(port=port))
            times = [run_hook(config, hook=hook_path).seconds for _ in range(runs)]
            # Each detached publisher gives up by itself after connect_timeout.
            time.sleep(3)
        good = write_config(work, vhost.url())
        flush = [hook_path, "--config", str(good), "flush"]
        subprocess.run(flush, check=False, capture_output=True)
        arrived = len(tap.take(runs, timeout=20))
    finally:
        tap.close()
    return {
        "silent_broker_hook_ms": median_ms(times),
        "silent_broker_hook_max_ms": max(times) * 1000,
        "silent_broker_events_lost": runs - arrived,
    }


def big_env(vhost: Vhost, work: Path, python: str, hook_path: str) -> dict[str, float]:
    """The foreground with thousands of PAM variables, against a bare interpreter with them."""
    config = write_config(work, vhost.url())
    run_hook(config, hook=hook_path)
    extra = {f"X{n:05d}": "v" * 100 for n in range(15_000)}
    env = {**extra, **PAM_ENV}
    bare: list[float] = []
    hook: list[float] = []
    for _ in range(ROUNDS // 2):
        start = time.perf_counter()
        subprocess.Popen([python, "-I", "-c", "pass"], env=extra).wait()
        bare.append(time.perf_counter() - start)
        hook.append(run_hook(config, env=env, hook=hook_path).seconds)
        wait_for(lambda: not spooled(work), timeout=10, step=0.01)
    return {
        "big_env_python_pass_ms": median_ms(bare),
        "big_env_hook_foreground_ms": median_ms(hook),
        "big_env_hook_vs_python_pass": statistics.median(hook) / statistics.median(bare),
    }


SPRAY = 30
SPRAY_ROUNDS = 3


def spray(vhost: Vhost, work: Path, python: str, hook_path: str) -> dict[str, float]:
    """30 failed passwords, hooks and publishers, against 30 bare interpreters: CPU each.

    Three rounds, each a batch of bare interpreters then a spray (its publisher done
    before the next round): the medians, so a burst of load on a shared machine moves
    one round, not the figure.
    """
    config = write_config(work, vhost.url())
    tap = TapQueue(vhost.url())
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **FAILED_PASSWORD}
    argv = [hook_path, "--config", str(config), "--outcome", "failure"]
    bare: list[float] = []
    hooks: list[float] = []
    publishers = arrived = 0
    try:
        run_hook(config, hook=hook_path)  # the settings cache and the slots, as on a live host
        tap.take(1)
        for _ in range(SPRAY_ROUNDS):
            # The last publisher lingers; the spray must start its own, to be measured.
            with spool_lock(str(work / "spool"), wait=60):
                pass
            bare.append(cpu_of([[python, "-I", "-c", "pass"]] * SPRAY, env, parallel=10).seconds)
            measured = cpu_of([argv] * SPRAY, env, parallel=10)
            hooks.append(measured.seconds)
            publishers += measured.processes - SPRAY
            arrived += len(tap.take(SPRAY, timeout=30))
    finally:
        tap.close()
    ratios = [h / b for h, b in zip(hooks, bare, strict=True)]
    return {
        "spray_python_pass_cpu_ms": statistics.median(bare) / SPRAY * 1000,
        "spray_failure_cpu_ms": statistics.median(hooks) / SPRAY * 1000,
        "spray_vs_python_pass": statistics.median(ratios),
        "spray_vs_python_pass_max": max(ratios),
        "spray_publishers_per_30": publishers / SPRAY_ROUNDS,
        "spray_events_lost": SPRAY * SPRAY_ROUNDS - arrived,
    }


def run(only: list[str] | None = None) -> dict[str, float]:
    figures: dict[str, float] = {}
    with bench_vhost() as vhost, tempfile.TemporaryDirectory() as tmp:
        python, hook_path = installed_hook(Path(tmp))
        sink = TapQueue(vhost.url())  # a queue bound to the exchange, so events route
        try:
            benches = (
                ("fg", foreground),
                ("ssh", ssh_login),
                ("silent", silent_broker),
                ("big_env", big_env),
                ("spray", spray),
            )
            for name, bench in benches:
                if only and name not in only:
                    continue
                work = Path(tmp) / name
                work.mkdir()
                figures |= bench(vhost, work, python, hook_path)
        finally:
            sink.close()
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=["fg", "ssh", "silent", "big_env", "spray"])
    for key, value in run(parser.parse_args().only).items():
        print(f"{key:32} {value:10.2f}")
