"""Central "machines" for tests: network namespaces of our own on a private bridge.

    with Network(2) as net:            # a bridge 10.231.N.1/24, namespaces .11 and .12
        proc = net.machines[0].popen([sys.executable, "-m", "consumer.cli", "worker", ...])
        net.machines[0].kill_all()     # kill -9 of every process in that namespace

Each run has its own names (``lw<6 hex>…``: a run never touches another's) and its own /24
in 10.231.0.0/16, one not routed here yet. The root namespace holds the bridge and its
address, where the test's services (a RabbitMQ node, PostgreSQL, SMTP) listen; each
namespace has loopback and one veth link to the bridge, and nothing else: no route out,
so the only targets it can reach are our own services. Everything is deleted on exit,
after a failure too (``ip netns del`` kills nothing: ``kill_all`` each machine first).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.services import missing

IP = "/usr/sbin/ip"
RANGE = ipaddress.IPv4Network("10.231.0.0/16")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip ARGS``; raises RuntimeError (with its stderr) when ``check`` and it fails."""
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


class Machine:
    """One namespace: its name, its address on the bridge, the processes started in it."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address

    def popen(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the namespace (``ip netns exec`` execs it: same pid)."""
        with log.open("ab") as out:
            return subprocess.Popen(
                [IP, "netns", "exec", self.name, *argv], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})},
            )  # fmt: skip

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IP, "netns", "exec", self.name, *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def pids(self) -> list[int]:
        """Every process of this namespace (``ip netns pids``)."""
        done = ip("netns", "pids", self.name, check=False)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    def kill_all(self, timeout: float = 10) -> list[int]:
        """``kill -9`` every process of the namespace, as a machine that loses power; waits
        until none is left. Returns the pids killed.

        Raises:
            RuntimeError: processes still there after ``timeout``.
        """
        killed = self.pids()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while (left := self.pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            raise RuntimeError(f"namespace {self.name}: pids {left} survived kill -9")
        return killed


class Network:
    """A bridge in the root namespace and ``count`` namespaces linked to it."""

    def __init__(self, count: int) -> None:
        if os.geteuid() != 0 or not os.path.exists(IP):
            missing("root and iproute2 (network namespaces)")
        self.tag = f"lw{uuid.uuid4().hex[:6]}"
        self.bridge = f"{self.tag}br"
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        self.address = str(hosts[0])  # where the services listen: the bridge's address
        self.machines = [
            Machine(f"{self.tag}-m{n}", str(hosts[9 + n])) for n in range(1, count + 1)
        ]
        self._made: list[tuple[str, ...]] = []  # what to delete, newest last

    def __enter__(self) -> Network:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def _create(self) -> None:
        prefix = self.subnet.prefixlen
        ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", "del", self.bridge))
        ip("addr", "add", f"{self.address}/{prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for n, machine in enumerate(self.machines, 1):
            ip("netns", "add", machine.name)
            self._made.append(("netns", "del", machine.name))
            outside = f"{self.tag}v{n}"
            ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns",
               machine.name)  # fmt: skip
            self._made.append(("link", "del", outside))
            ip("link", "set", outside, "master", self.bridge, "up")
            inside = ("netns", "exec", machine.name, IP)
            ip(*inside, "link", "set", "lo", "up")
            ip(*inside, "addr", "add", f"{machine.address}/{prefix}", "dev", "eth0")
            ip(*inside, "link", "set", "eth0", "up")
        self._await_links()

    def _await_links(self, timeout: float = 10) -> None:
        """Until every namespace can open a TCP connection to the bridge address."""
        with socket.create_server((self.address, 0)) as probe:
            port = probe.getsockname()[1]
            code = f"import socket; socket.create_connection(({self.address!r}, {port}), 1)"
            deadline = time.monotonic() + timeout
            for machine in self.machines:
                while machine.run(sys.executable, "-c", code).returncode != 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{machine.name} cannot reach {self.address}")
                    time.sleep(0.1)

    def close(self) -> None:
        """Kill what runs in the namespaces, delete them, their links and the bridge."""
        for machine in self.machines:
            with contextlib.suppress(RuntimeError):
                machine.kill_all()
        for args in reversed(self._made):
            ip(*args, check=False)  # a veth goes with its namespace: "cannot find" is fine
        self._made.clear()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.231.0.0/16 that no address or route here overlaps."""
    words = ip("-4", "route", "show", "table", "all").stdout.split()
    words += ip("-4", "-o", "addr", "show").stdout.split()
    used = [net for word in words if (net := _network(word)) is not None]
    candidates = list(RANGE.subnets(new_prefix=24))
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError(f"no free /24 in {RANGE}")


def _network(word: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(word, strict=False)
    except ValueError:
        return None
