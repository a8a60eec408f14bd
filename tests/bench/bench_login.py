"""Benchmark: what each session hook costs an ssh login on Debian's installed PAM stack.

One real sshd (Debian's OpenSSH, loopback, ``ssh host true``) with Debian's own
/etc/pam.d/sshd, and the hook where install-host.sh puts it: before the first pam_env line,
``type=open_session``. Four setups take turns in interleaved rounds (the order rotates each
round), the PAM file swapped between logins:

- ``none``: Debian's stack as it is;
- ``true``: ``pam_exec /bin/true``, the floor of any pam_exec hook;
- ``python``: the Python foreground as install-host.sh installs it (a regular venv from the
  host lock, the ``python -I`` launcher);
- ``native``: the C front-end (producer/native) in that venv's bin.

Per setup: the mean, the distribution (p10/median/p90), the mean against ``none`` and
against ``true``, and the share of logins that paid a stall. A stall is read from
``tcpdump -i lo``: sshd sends a small packet, the client's bare ACK comes 30 ms or more
later, and sshd's next data leaves right behind it (within 2 ms). That is Nagle's rule
holding sshd's next packet against the client's delayed ACK (docs/host-hook.md says where
it comes from). Then the hooks' own wall time, as pam_exec waits for each, p50 and p99: the
same logins with the hook run under a timing wrapper (a C program that forks, execs and
waits, as pam_exec does) for ``true``, ``python`` and ``native``.

Run alone: ``.venv/bin/python -m tests.bench.bench_login [--rounds N]`` (root: sshd runs in a
private mount namespace). ``make bench`` runs it as the ``login`` section.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from producer.backlog import spool_lock
from tests.bench.bench_hook import installed_hook
from tests.bench.bench_support import bench_vhost, percentile_ms
from tests.support.hookrun import (
    PAM_ENV,
    TapQueue,
    spool_records,
    spooled,
    wait_for,
    warm_settings,
    write_config,
)
from tests.support.native import built
from tests.support.sshd import TEST_USER, Sshd

ROUNDS = int(os.environ.get("LW_LOGIN_ROUNDS", "25"))
TIMED_ROUNDS = int(os.environ.get("LW_LOGIN_TIMED_ROUNDS", "40"))
SETUPS = ("none", "true", "python", "native")
STALL_S, RELEASE_S = 0.030, 0.002

TIMER_SOURCE = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* timed LOG PROGRAM ARGS...: runs PROGRAM as pam_exec does (fork, exec, wait) and appends
 * its wall time in ns to LOG. */
int main(int argc, char **argv) {
    struct timespec a, b;
    int status = 0;
    (void)argc;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) { execv(argv[2], argv + 2); _exit(127); }
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    FILE *log = fopen(argv[1], "a");
    long long ns = (b.tv_sec - a.tv_sec) * 1000000000LL + b.tv_nsec - a.tv_nsec;
    if (log) { fprintf(log, "%lld\n", ns); fclose(log); }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"""


def debian_stack(hook: str) -> str:
    """Debian's /etc/pam.d/sshd with ``hook`` (a pam_exec command line, or "") where
    install-host.sh puts the session hook: before the first pam_env line, at open only."""
    lines = Path("/etc/pam.d/sshd").read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if "pam_env.so" in line and line[0] != "#")
    if hook:
        lines.insert(at, f"session optional pam_exec.so quiet type=open_session {hook}\n")
    return "".join(lines)


@contextmanager
def captured(port: int, pcap: Path) -> Iterator[None]:
    """tcpdump of the sshd's port on loopback while the block runs."""
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "-w", str(pcap), f"tcp port {port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        time.sleep(0.5)
        dump.terminate()
        dump.wait()


def stalls(pcap: Path, port: int) -> list[tuple[float, bool]]:
    """Per connection, in order: when its first packet was seen (the epoch), and whether
    sshd's data was held for a delayed ACK."""
    text = subprocess.run(["tcpdump", "-r", str(pcap), "-n", "-tt"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    connections: dict[str, list[tuple[float, bool, int, bool]]] = {}
    order: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[1] != "IP":
            continue
        src, dst = words[2], words[4].rstrip(":")
        server = src.endswith(f".{port}")
        client = dst if server else src
        if client not in connections:
            connections[client] = []
            order.append(client)
        length = int(words[-1]) if words[-2] == "length" else 0
        connections[client].append((float(words[0]), server, length, "[S]" in line))
    return [(connections[c][0][0], stalled(connections[c])) for c in order]


def attributed(
    spans: list[tuple[str, float, float]], connections: list[tuple[float, bool]]
) -> dict[str, list[bool]]:
    """Per setup, whether each of its logins stalled: a connection is the login's whose
    span (the epoch, as tcpdump's stamps) holds its first packet. A login without one
    (tcpdump dropped it) counts for neither side: the share is of the logins seen."""
    by_setup: dict[str, list[bool]] = {}
    for name, start, end in spans:
        mine = [held for first, held in connections if start <= first < end]
        if len(mine) == 1:
            by_setup.setdefault(name, []).append(mine[0])
    return by_setup


def stalled(packets: list[tuple[float, bool, int, bool]]) -> bool:
    for n in range(len(packets) - 2):
        (t0, s0, l0, _), (t1, s1, l1, _), (t2, s2, l2, _) = packets[n : n + 3]
        held = s0 and l0 and not s1 and not l1 and s2 and l2
        if held and t1 - t0 >= STALL_S and t2 - t1 <= RELEASE_S:
            return True
    return False


def summary(times: list[float], held: list[bool]) -> dict[str, float]:
    return {
        "mean_ms": statistics.mean(times) * 1000,
        "p10_ms": percentile_ms(times, 10),
        "median_ms": percentile_ms(times, 50),
        "p90_ms": percentile_ms(times, 90),
        "stall_share": sum(held) / len(held) if held else float("nan"),
        "stalls_seen_of": float(len(held)),
    }


def direct(native: str, config: Path, rounds: int) -> dict[str, float]:
    """The front-end run by hand with the PAM environment (no sshd), against /bin/true, with
    its spool on the disk and on a tmpfs (/dev/shm): what the durable write itself costs."""
    shm = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="lw-bench-"))
    on_shm = config.with_name("shm.toml")
    on_shm.write_text(config.read_text().replace(str(config.parent / "spool"), str(shm / "spool")))
    times: dict[str, list[float]] = {"true": [], "disk": [], "tmpfs": []}
    argv = {"true": ["/bin/true"], "disk": [native, "--config", str(config)],
            "tmpfs": [native, "--config", str(on_shm)]}  # fmt: skip
    said = config.with_name("direct.stderr")
    try:
        warm_settings(on_shm)
        warm_settings(config)
        for _ in range(rounds):
            for name, command in argv.items():
                with said.open("ab") as stderr:
                    start = time.perf_counter()
                    subprocess.Popen(command, env=PAM_ENV, stdin=subprocess.DEVNULL,
                                     stderr=stderr).wait()  # fmt: skip
                    times[name].append(time.perf_counter() - start)
                wait_for(lambda: not spooled(config.parent) and not spool_records(shm / "spool"),
                         timeout=10, step=0.01)  # fmt: skip
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    figures = {"direct_handed_to_python": float(said.read_text().count("Python foreground takes"))}
    for name, values in times.items():
        figures[f"direct_{name}_p50_ms"] = percentile_ms(values, 50)
        figures[f"direct_{name}_p99_ms"] = percentile_ms(values, 99)
    return figures


class Logins:
    """One sshd with Debian's stack, its PAM file swapped per login, and what each login ran."""

    def __init__(self, sshd: Sshd, work: Path, python: str) -> None:
        self.sshd, self.work, self.python = sshd, work, python
        self.ran: list[tuple[str, float, float]] = []  # setup, its login's start and end
        self.unpublished = 0

    def login(self, name: str, hook: str) -> float:
        if not Path(self.python).exists():
            raise RuntimeError(f"{self.python} is gone: something removed the bench's venv")
        (self.sshd.ns.pam_dir / "sshd").write_text(debian_stack(hook))
        start = time.time()
        took = self.sshd.ssh(TEST_USER)
        self.ran.append((name, start, time.time()))
        # The publisher is done before the next login (else it competes with it).
        if not wait_for(lambda: not spooled(self.work), timeout=10, step=0.01):
            self.unpublished += 1
        return took

    def paired(
        self, hooks: dict[str, str], rounds: int
    ) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
        """Interleaved rounds under tcpdump: each setup's times, and which logins stalled."""
        times: dict[str, list[float]] = {name: [] for name in SETUPS}
        pcap = self.work / "logins.pcap"
        with captured(self.sshd.port, pcap):
            for name in SETUPS:  # warm-up: caches, the spool's slots, the page cache
                self.login(f"warm-{name}", hooks[name])
            for n in range(rounds):
                for name in SETUPS[n % 4 :] + SETUPS[: n % 4]:
                    times[name].append(self.login(name, hooks[name]))
        by_setup = attributed(self.ran, stalls(pcap, self.sshd.port))
        return times, {name: by_setup.get(name, []) for name in SETUPS}

    def walls(self, hooks: dict[str, str], timer: Path, rounds: int) -> dict[str, list[float]]:
        """Each hook's own wall time as pam_exec waits for it (the timing wrapper's)."""
        timed = SETUPS[1:]
        for n in range(rounds):
            for name in timed[n % 3 :] + timed[: n % 3]:
                self.login(f"timed-{name}", f"{timer} {self.work / name}.ns {hooks[name]}")
        return {
            name: [int(x) / 1e9 for x in (self.work / f"{name}.ns").read_text().split()]
            for name in timed
        }


def measure(rounds: int = ROUNDS, timed_rounds: int = TIMED_ROUNDS) -> dict[str, object]:
    if shutil.which("tcpdump") is None:
        return {"skipped": "tcpdump (apt-get install tcpdump)"}
    # Under /var/tmp: the spool's disk, and no test session's cleanup of /tmp configs' settings
    # caches (tests/support/host_side.py) hands a login to the Python foreground meanwhile.
    with (
        bench_vhost() as vhost,
        tempfile.TemporaryDirectory(prefix="lw-bench-login-", dir="/var/tmp") as tmp,
    ):
        work = Path(tmp)
        python, launcher = installed_hook(work)
        native = str(Path(python).with_name("loginwatch-hook-native"))
        shutil.copy(built(), native)
        timer = work / "timed"
        (work / "timed.c").write_text(TIMER_SOURCE)
        subprocess.run(["gcc", "-O2", "-o", str(timer), str(work / "timed.c")], check=True)
        config = write_config(work, vhost.url())
        sink = TapQueue(vhost.url())  # the exchange, and a queue bound to it: events route
        hooks = {"none": "", "true": "/bin/true", "python": f"{launcher} --config {config}",
                 "native": f"{native} --config {config}"}  # fmt: skip
        with Sshd(debian_stack("")) as sshd:
            warm_settings(config, sshd.ns.run_dir / "loginwatch")
            logins = Logins(sshd, work, python)
            times, held = logins.paired(hooks, rounds)
            walls = logins.walls(hooks, timer, timed_rounds)
        figures: dict[str, object] = {
            "logins_per_setup": rounds,
            "kernel": os.uname().release,
            "logins_whose_event_was_not_published_within_10_s": logins.unpublished,
        }
        figures |= direct(native, config, timed_rounds * 2)
        sink.close()
        with spool_lock(str(work / "spool"), wait=30):  # the last publisher is done lingering
            pass
    for name in SETUPS:
        figures[name] = summary(times[name], held[name])
        figures[f"{name}_vs_none"] = statistics.mean(times[name]) / statistics.mean(times["none"])
        figures[f"{name}_vs_true"] = statistics.mean(times[name]) / statistics.mean(times["true"])
    for name, values in walls.items():
        figures[f"wall_{name}_p50_ms"] = percentile_ms(values, 50)
        figures[f"wall_{name}_p99_ms"] = percentile_ms(values, 99)
    figures["load_average"] = os.getloadavg()[0]
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--timed-rounds", type=int, default=TIMED_ROUNDS)
    args = parser.parse_args()
    for key, value in measure(args.rounds, args.timed_rounds).items():
        if isinstance(value, dict):
            print(f"{key:10} " + "  ".join(f"{k} {v:.3f}" for k, v in value.items()))
        else:
            print(f"{key:32} {value:10.3f}" if isinstance(value, float) else f"{key:32} {value}")
    sys.exit(0)
