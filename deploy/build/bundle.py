"""The host side's offline bundle: one tarball from which a host with no package index installs.

    python deploy/build/bundle.py dist/loginwatch-host-0.2.0.tar.gz      (make host-bundle)
    python deploy/build/bundle.py --wheels DIR --lock requirements/host-test.txt \\
        --python 3.9 --arch x86_64                                      (the chroot tests)

The tarball holds one directory, ``loginwatch-host-VERSION/``:

    install-host.sh, lib/, systemd/, loginwatch-host.toml   deploy/'s host files
    wheels/               every wheel requirements/host.txt pins for CPython 3.9-3.13 on
                          x86_64 and aarch64 (manylinux), pip's (build.txt's pins), and
                          loginwatch-host itself, built here from src/
    requirements/         host.txt and build.txt as locked, self.txt (loginwatch-host's hash),
                          pip.txt (which pip wheel runs on which Python)
    src/                  the host side's source (deploy/host/modules.txt), which the
                          loginwatch-host wheel was built from
    bin/ARCH/             the C capture front-end (producer/native) for x86_64 and aarch64,
                          static-pie, built here (``make -C producer/native ARCH=…``);
                          install-host.sh uses the one for the host's architecture
    SHA256SUMS            every file above, for `sha256sum -c`

``install-host.sh --bundle FILE`` installs from it with ``pip --no-index --require-hashes``:
pip checks every wheel against the lock's hashes, so the host runs exactly what CI tested.

pip evaluates a lock's markers (``python_full_version < '3.10'``) against the Python that
runs it, even with ``--python-version``, so each target's pins are chosen here, with
``packaging``, and downloaded one target at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

REPO = Path(__file__).resolve().parents[2]
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
ARCHS = ("x86_64", "aarch64")
# The oldest glibc of a host we support is Debian 11's 2.31 (RHEL 9: 2.34): manylinux up to 2_28.
MANYLINUX = ("manylinux2014", "manylinux_2_17", "manylinux_2_28")
# deploy/'s files a host needs, copied to the bundle's top.
DEPLOY_FILES = (
    "install-host.sh",
    "lib/files.sh",
    "lib/pam.sh",
    "loginwatch-host.toml",
    "systemd/loginwatch-flush.service",
    "systemd/loginwatch-flush.timer",
    "systemd/loginwatch-goodbye.service",
)
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\$"
)


@dataclass(frozen=True)
class Pin:
    """One ``name==version ; marker`` of a lock, with its lines (hashes included)."""

    name: str
    version: str
    marker: str | None
    lines: tuple[str, ...]

    def applies(self, python: str, arch: str) -> bool:
        """True when pip on CPython ``python`` (3.9 …) on Linux ``arch`` installs it."""
        if self.marker is None:
            return True
        return Marker(self.marker).evaluate(
            {
                "python_version": python,
                "python_full_version": f"{python}.0",
                "platform_machine": arch,
                "sys_platform": "linux",
                "platform_system": "Linux",
                "os_name": "posix",
                "implementation_name": "cpython",
                "platform_python_implementation": "CPython",
            }
        )


def read_lock(path: Path) -> list[Pin]:
    """The pins of a lock written by `make lock`, in file order."""
    pins: list[Pin] = []
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            pins.append(Pin(match["name"], match["version"], match["marker"], (line,)))
        elif line.strip().startswith("--hash=") and pins:
            last = pins[-1]
            pins[-1] = Pin(last.name, last.version, last.marker, (*last.lines, line))
    return pins


def download(pins: Iterable[Pin], python: str, arch: str, dest: Path) -> None:
    """pip downloads ``pins`` (their hashes checked) as wheels for CPython ``python`` on ``arch``.

    Raises:
        subprocess.CalledProcessError: a pin has no wheel for that target, or a wrong hash.
    """
    chosen = [pin for pin in pins if pin.applies(python, arch)]
    if not chosen:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        # Without the markers, which pip would judge by this Python; the last line of a pin
        # ends in a backslash: a blank line closes it.
        requirements.write(
            "\n".join(
                line
                for pin in chosen
                for line in (f"{pin.name}=={pin.version} \\", *pin.lines[1:], "")
            )
        )
        requirements.flush()
        platforms = [f"--platform={tag}_{arch}" for tag in MANYLINUX]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--require-hashes", f"--python-version={python}", "--implementation=cp",
             *platforms, "-d", str(dest), "-r", requirements.name],
            check=True,
        )  # fmt: skip


def stage_source(dest: Path) -> None:
    """The host side's files (deploy/host/modules.txt) and its pyproject, at ``dest``."""
    for name in (REPO / "deploy" / "host" / "modules.txt").read_text().split():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    shutil.copy2(REPO / "deploy" / "host" / "pyproject.toml", dest / "pyproject.toml")


def host_wheel(source: Path, dest: Path) -> Path:
    """loginwatch-host's wheel, built from a copy of ``source`` (setuptools leaves build/
    and egg-info beside the sources) into ``dest`` by the locked setuptools."""
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "src"
        shutil.copytree(source, copy)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", str(dest), str(copy)],
            check=True, env={**os.environ, "SOURCE_DATE_EPOCH": _epoch()},
        )  # fmt: skip
    (wheel,) = dest.glob("loginwatch_host-*.whl")
    return wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version() -> str:
    text = (REPO / "schemas" / "version.py").read_text()
    match = re.search(r'^VERSION = "([^"]+)"$', text, re.MULTILINE)
    assert match, "schemas/version.py: no VERSION line"
    return match[1]


def _epoch() -> str:
    """The checkout's last commit time (reproducible archives), else now."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or str(int(os.path.getmtime(REPO / "pyproject.toml")))


def native(arch: str) -> Path:
    """The front-end for ``arch``, built by its Makefile (a cross compiler for aarch64).

    Raises:
        SystemExit: it cannot be built here (the message says what to install).
    """
    cc = "gcc" if arch == platform.machine() else f"{arch}-linux-gnu-gcc"
    if shutil.which(cc) is None:
        package = "gcc" if cc == "gcc" else f"gcc-{arch}-linux-gnu"
        raise SystemExit(f"host-bundle: {cc} builds the {arch} hook: apt-get install {package}")
    subprocess.run(["make", "-s", "-C", str(REPO / "producer" / "native"), f"ARCH={arch}"],
                   check=True)  # fmt: skip
    return REPO / "producer" / "native" / "out" / arch / "loginwatch-hook"


def fill(top: Path, pythons: Sequence[str], archs: Sequence[str]) -> None:
    """Everything the bundle holds, in ``top``."""
    for name in DEPLOY_FILES:
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "deploy" / name, top / name)
    requirements = top / "requirements"
    requirements.mkdir()
    for lock in ("host.txt", "build.txt"):
        shutil.copy2(REPO / "requirements" / lock, requirements / lock)
    stage_source(top / "src")
    wheels = top / "wheels"
    wheels.mkdir()
    host = read_lock(REPO / "requirements" / "host.txt")
    pips = [pin for pin in read_lock(REPO / "requirements" / "build.txt") if pin.name == "pip"]
    table = []
    for python in pythons:
        for arch in archs:
            download([*host, *pips], python, arch, wheels)
        (pip,) = (pin for pin in pips if pin.applies(python, archs[0]))
        table.append(f"{python} pip-{pip.version}-py3-none-any.whl")
    (requirements / "pip.txt").write_text(
        "# The pip wheel that installs the rest, by Python version (install-host.sh --bundle)\n"
        + "\n".join(table)
        + "\n"
    )
    wheel = host_wheel(top / "src", wheels)
    (requirements / "self.txt").write_text(
        f"loginwatch-host=={version()} \\\n    --hash=sha256:{sha256(wheel)}\n"
    )
    for arch in archs:
        (top / "bin" / arch).mkdir(parents=True)
        shutil.copy2(native(arch), top / "bin" / arch / "loginwatch-hook")
    (top / "bin" / "README").write_text(
        "The C capture front-end (producer/native in the source) for each architecture:\n"
        "install-host.sh installs the one for this machine into the venv's bin, and falls\n"
        "back to the Python foreground (wheels/) when none runs here, and says so.\n"
    )
    (top / "VERSION").write_text(version() + "\n")
    files = sorted(p for p in top.rglob("*") if p.is_file())
    (top / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.relative_to(top)}\n" for p in files))


def pack(top: Path, out: Path) -> None:
    """``top`` as a gzip tarball at ``out``: sorted, owner root, one mtime (reproducible)."""
    epoch = int(_epoch())

    def normal(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = epoch
        return info

    part = out.with_name(out.name + ".part")
    with tarfile.open(part, "w:gz") as tar:
        for path in [top, *sorted(top.rglob("*"))]:
            tar.add(path, arcname=str(path.relative_to(top.parent)), recursive=False, filter=normal)
    part.replace(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="the bundle to write (.tar.gz)")
    parser.add_argument("--wheels", type=Path, help="only download --lock's wheels into DIR")
    parser.add_argument("--lock", type=Path, action="append", default=[])
    parser.add_argument("--python", action="append", choices=PYTHONS)
    parser.add_argument("--arch", action="append", choices=ARCHS)
    args = parser.parse_args(argv)
    pythons, archs = args.python or PYTHONS, args.arch or ARCHS
    if args.wheels:
        args.wheels.mkdir(parents=True, exist_ok=True)
        pins = [pin for lock in args.lock for pin in read_lock(lock)]
        for python in pythons:
            for arch in archs:
                download(pins, python, arch, args.wheels)
        return 0
    if args.out is None:
        parser.error("name the bundle to write, or --wheels DIR")
    with tempfile.TemporaryDirectory() as work:
        top = Path(work) / f"loginwatch-host-{version()}"
        top.mkdir()
        fill(top, pythons, archs)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pack(top, args.out)
    print(f"host-bundle: wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
