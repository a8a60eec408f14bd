"""``make newcomer``: the two commands on a fresh machine, as a newcomer runs them.

A debootstrapped Debian 12 with nothing but make and git (``make chroots``), booted by
systemd-nspawn into a network namespace of its own, whose only way out is a proxy to Debian's
mirror and PyPI (tests/support/registry_proxy.py). This checkout's commit is cloned under
/root (mode 0700), and there, as root with CI=true (so a missing part fails rather than
skips), ``make test`` then ``make demo`` run twice:

- without systemd: the container runs the commands as its only process tree (nspawn's stub
  init as PID 1), the way a container does; packages' services start from their init scripts;
- with systemd: systemd-sysv installed first (a VM has it; an image does not), the
  container boots systemd as PID 1 (``--boot``), the commands run as a oneshot unit, and
  apt's packages start their services through systemd, as on a VM.

Each run must pass with no test skipped. It prints both runs' times and pytest's closing
lines; the logs stay in newcomer-out/. Needs root, systemd-nspawn and iproute2
(make fleet-deps installs them). ``--only systemd|plain`` runs one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.chroot import REPO, require
from tests.support.netns import Network
from tests.support.registry_proxy import RegistryProxy

OUT = REPO / "newcomer-out"
BOUND_S = 50 * 60  # each run; make test alone takes 10-20 minutes on two busy cores
SCRIPT = """\
#!/bin/sh
# What a newcomer types, timed; each command's output and status kept under /root.
# nspawn hands its payload NOTIFY_SOCKET (its own readiness socket), which no machine or
# container of a newcomer has; RabbitMQ's systemd support crashes on it.
unset NOTIFY_SOCKET
update-ca-certificates >/dev/null 2>&1  # this network's CAs (see LOCAL_CAS)
cd /root
git clone -q /newcomer/repo.bundle loginwatch
cd loginwatch
for target in test demo; do
    start=$(date +%s)
    make "$target" >"/root/make-$target.log" 2>&1
    echo "$? $(($(date +%s) - start))" >"/root/make-$target.rc"
    [ "$(cut -d' ' -f1 "/root/make-$target.rc")" = 0 ] || break
done
"""


def loop_devices() -> list[str]:
    """This machine's loop devices: /dev/loop-control and every /dev/loopN."""
    found = sorted(str(p) for p in Path("/dev").glob("loop[0-9]*"))
    return ["/dev/loop-control", *found] if Path("/dev/loop-control").exists() else found


UNIT = """\
[Unit]
Description=a newcomer's make test and make demo
After=basic.target

[Service]
Type=oneshot
Environment={env}
ExecStart=/bin/sh /newcomer/run.sh
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""


# Where this machine keeps the certificate authorities it trusts beyond Debian's own: a
# network that inspects TLS on its way out (as this workplace's does) has its CA there, and
# any machine on that network, the newcomer's too, must trust it to reach PyPI.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def prepare(root: Path, bundle_dir: Path) -> None:
    """The unpacked Debian 12 as a fresh machine named newcomer, with the run's script."""
    for ca in LOCAL_CAS.glob("*.crt"):
        shutil.copy2(ca, root / LOCAL_CAS.relative_to("/") / ca.name)
    (root / "etc" / "hostname").write_text("newcomer\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 newcomer\n")
    (bundle_dir / "run.sh").write_text(SCRIPT)
    subprocess.run(["git", "-C", str(REPO), "bundle", "create", "-q",
                    str(bundle_dir / "repo.bundle"), "HEAD"], check=True)  # fmt: skip


def run(mode: str, netns: str, proxy: RegistryProxy, log: Path) -> float:
    """One fresh machine, ``mode`` "plain" or "systemd"; returns its wall time."""
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="loginwatch-newcomer-") as work:
        root, shared = Path(work) / "newcomer", Path(work) / "shared"
        root.mkdir()
        shared.mkdir()
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xzf", str(require("12"))],
                       check=True)  # fmt: skip
        os.chmod(root, 0o755)
        prepare(root, shared)
        # no_proxy: what the machine serves itself (the tests' /metrics) stays off the proxy.
        env = {"CI": "true", "http_proxy": proxy.url, "https_proxy": proxy.url,
               "no_proxy": "127.0.0.1,localhost,::1",
               "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
               # pip trusts its own certifi unless told: the system's bundle, with LOCAL_CAS.
               "PIP_CERT": CA_BUNDLE, "REQUESTS_CA_BUNDLE": CA_BUNDLE}  # fmt: skip
        argv = ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
                "--machine=newcomer", f"--network-namespace-path=/run/netns/{netns}",
                # root's capabilities, as on a machine of its own (bridges, veth: CAP_NET_ADMIN)
                "--capability=all",
                f"--bind-ro={shared}:/newcomer",
                # and its loop devices, as a machine has them (nspawn gives a container
                # none; the spool tests mount small ext4 images: tests/support/loopfs.py)
                *(f"--bind={loop}" for loop in loop_devices())]  # fmt: skip
        if mode == "systemd":
            # A machine that boots with systemd has it (a VM, a server): the debootstrapped
            # image, a container's, does not. Installed first, then booted.
            boot = subprocess.run(
                [*argv, "--as-pid2", *(f"--setenv={k}={v}" for k, v in env.items()),
                 "/bin/sh", "-c", "update-ca-certificates >/dev/null && apt-get update -qq &&"
                 " apt-get install -y -qq --no-install-recommends systemd-sysv >/dev/null"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900,
                check=False,
            )  # fmt: skip
            if boot.returncode != 0:
                raise RuntimeError(f"installing systemd-sysv failed: {boot.stdout}{boot.stderr}")
            unit = root / "etc/systemd/system/newcomer.service"
            unit.write_text(UNIT.format(env=" ".join(f"{k}={v}" for k, v in env.items())))
            wants = root / "etc/systemd/system/multi-user.target.wants"
            wants.mkdir(parents=True, exist_ok=True)
            (wants / "newcomer.service").symlink_to("/etc/systemd/system/newcomer.service")
            argv += ["--boot"]
        else:
            argv += ["--as-pid2", *(f"--setenv={k}={v}" for k, v in env.items()),
                     "/bin/sh", "/newcomer/run.sh"]  # fmt: skip
        start = time.monotonic()
        with log.open("wb") as out:
            nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT)  # fmt: skip
            try:
                nspawn.wait(BOUND_S)
            except subprocess.TimeoutExpired:
                nspawn.send_signal(signal.SIGTERM)  # nspawn: power the container off
                try:
                    nspawn.wait(60)
                except subprocess.TimeoutExpired:
                    nspawn.kill()
                    nspawn.wait()
        elapsed = time.monotonic() - start
        for name in ("make-test.log", "make-demo.log", "make-test.rc", "make-demo.rc"):
            if (root / "root" / name).exists():
                shutil.copy2(root / "root" / name, OUT / f"{mode}-{name}")
    return elapsed


def verdict(mode: str) -> list[str]:
    """What went wrong in ``mode``'s run (nothing: it passed with no test skipped)."""
    problems = []
    for target in ("test", "demo"):
        rc = OUT / f"{mode}-make-{target}.rc"
        if not rc.exists():
            problems.append(f"make {target} did not finish (see {OUT.name}/{mode}-*.log)")
            break
        status, seconds = rc.read_text().split()
        print(f"newcomer ({mode}): make {target} exited {status} after {int(seconds) // 60} min"
              f" {int(seconds) % 60} s")  # fmt: skip
        if status != "0":
            log = (OUT / f"{mode}-make-{target}.log").read_text(errors="replace")
            problems.append(f"make {target} failed:\n" + "\n".join(log.splitlines()[-40:]))
    test_log = OUT / f"{mode}-make-test.log"
    if test_log.exists():
        text = test_log.read_text(errors="replace")
        closing = re.findall(r"^=+ (.*\d+ passed.*) =+$", text, re.M)
        print(f"newcomer ({mode}): pytest: {closing[-1] if closing else '(no closing line)'}")
        if not closing or "skipped" in closing[-1] or "skipped tiers:" in text:
            problems.append("make test skipped tests, or printed no pytest summary")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["plain", "systemd"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("systemd-nspawn") is None:
        print("newcomer: needs root and systemd-nspawn (make fleet-deps)",
              file=sys.stderr)  # fmt: skip
        return 1
    require("12")
    OUT.mkdir(exist_ok=True)
    modes = [args.only] if args.only else ["plain", "systemd"]
    failed = []
    with Network(1) as net:
        proxy = RegistryProxy(net.address)
        try:
            for mode in modes:
                seconds = run(mode, net.machines[0].name, proxy, OUT / f"{mode}-nspawn.log")
                print(f"newcomer ({mode}): the machine ran {seconds / 60:.1f} min")
                failed += [f"{mode}: {problem}" for problem in verdict(mode)]
        finally:
            proxy.stop()
        print(f"newcomer: connections through the proxy: {proxy.tunnels}")
    for problem in failed:
        print(f"newcomer: {problem}", file=sys.stderr)
    print(f"newcomer: {len(modes) - len({p.split(':')[0] for p in failed})} passed,"
          f" {len({p.split(':')[0] for p in failed})} failed")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
