"""The lock files agree with pyproject.toml, and this venv is the one they pin (offline).

`make lock` writes requirements/*.txt with uv, which needs the package index; `make
lock-check` diffs a fresh run against them. This checks without the network what a
forgotten `make lock` breaks: a requirement pyproject names that no file pins, or pins
outside its range; a pin without hashes (pip --require-hashes then refuses the file); one
distribution pinned at two versions in two files; and a venv that `make` did not install
from the lock.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]
LOCKS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# `name==version ; marker \`, its hashes on the lines below.
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\$"
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: int

    def applies(self) -> bool:
        """True when this Python (the venv's) installs it."""
        return self.marker is None or self.marker.evaluate()


def pins(lock: str) -> list[Pin]:
    """The pins of requirements/LOCK, in file order, each with its count of hashes."""
    found: list[Pin] = []
    for line in (LOCKS / lock).read_text().splitlines():
        if match := PIN.match(line):
            marker = match["marker"]
            found.append(
                Pin(
                    canonicalize_name(match["name"]),
                    Version(match["version"]),
                    Marker(marker) if marker else None,
                    0,
                )
            )
        elif line.strip().startswith("--hash=sha256:") and found:
            last = found[-1]
            found[-1] = Pin(last.name, last.version, last.marker, last.hashes + 1)
        else:
            assert not line or line.startswith(("#", "    #")), f"{lock}: {line!r}"
    return found


def extras(*names: str) -> list[Requirement]:
    optional = PYPROJECT["project"]["optional-dependencies"]
    return [Requirement(spec) for name in names for spec in optional[name]]


HOST = [Requirement(spec) for spec in PYPROJECT["project"]["dependencies"]]
BUILD = [Requirement(spec) for spec in PYPROJECT["build-system"]["requires"]]
# What each file must pin: its own requirements from pyproject (and all they pull in).
WANTS = {
    "build.txt": [*BUILD, Requirement("pip")],
    "host.txt": HOST,
    "host-test.txt": [
        Requirement(line)
        for line in (LOCKS / "host-test.in").read_text().splitlines()
        if line and not line.startswith("#")
    ],
    "central.txt": [*HOST, *extras("central")],
    "dev.txt": [*HOST, *extras("central", "dev")],
}


@pytest.mark.parametrize("lock", sorted(WANTS))
def test_every_requirement_in_pyproject_is_pinned_inside_its_range(lock: str) -> None:
    locked = pins(lock)
    header = (LOCKS / lock).read_text().splitlines()[:2]
    assert header[1] == "#    make lock", f"{lock}: not written by `make lock`: {header}"
    oldest = "3.11" if lock in ("central.txt", "dev.txt") else "3.9"
    for wanted in WANTS[lock]:
        if not _for_any_python(wanted, oldest):
            continue  # tomli below 3.11, in a lock for 3.11 and later
        versions = [pin.version for pin in locked if pin.name == canonicalize_name(wanted.name)]
        assert versions, f"{lock} pins no {wanted.name}: run `make lock`"
        outside = [str(v) for v in versions if not wanted.specifier.contains(v, prereleases=True)]
        assert not outside, f"{lock}: {wanted.name}=={outside} is outside {wanted}: run `make lock`"
    assert all(pin.hashes for pin in locked), f"{lock}: a pin without hashes"


def _for_any_python(wanted: Requirement, oldest: str) -> bool:
    """True when ``wanted``'s marker holds on some Python from ``oldest`` to 3.13."""
    first = int(oldest.split(".")[1])
    return wanted.marker is None or any(
        wanted.marker.evaluate(
            {"python_version": f"3.{minor}", "python_full_version": f"3.{minor}.0"}
        )
        for minor in range(first, 14)
    )


def test_a_host_pins_only_its_own_requirements() -> None:
    # A host carries pika and msgspec and nothing they pull in: a new dependency of either
    # shows here, to be weighed before it goes onto every SSH host.
    assert {pin.name for pin in pins("host.txt")} == {canonicalize_name(r.name) for r in HOST}


def test_a_distribution_has_one_version_in_every_file_for_one_python() -> None:
    # central.txt is locked with host.txt's pins as constraints, dev.txt with central.txt's:
    # the tests run the versions the central side and the hosts install.
    # host-test.txt, for the chroots' Pythons, is locked with host.txt's pins as constraints.
    for narrow, wide in (
        ("host.txt", "central.txt"),
        ("central.txt", "dev.txt"),
        ("host.txt", "host-test.txt"),
    ):
        wider = {pin.name: pin.version for pin in pins(wide)}
        for pin in pins(narrow):
            if wide == "host-test.txt" and pin.name not in wider:
                continue  # the tests' own pins, beside the host's (not a superset)
            if pin.marker is None or pin.marker.evaluate({"python_full_version": "3.11.0"}):
                assert wider.get(pin.name) == pin.version, (narrow, wide, pin)


def test_this_venv_has_every_pin_of_the_dev_and_build_locks() -> None:
    # make installs exactly these (pip --require-hashes): a differing version means a venv
    # made some other way, or a lock changed without the stamp noticing.
    for lock in ("build.txt", "dev.txt"):
        for pin in pins(lock):
            if pin.applies():
                assert Version(metadata.version(pin.name)) == pin.version, (lock, pin)


def locked(*locks: str) -> dict[str, Version]:
    """What pip installs from these files on this Python: name → version."""
    return {pin.name: pin.version for lock in locks for pin in pins(lock) if pin.applies()}


def frozen(python: Path, project: str) -> dict[str, Version]:
    """What this venv holds, ``project`` itself left out (asserted installed, from a tree)."""
    out = subprocess.run(
        [python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert any(line.startswith(f"{project} @ file://") for line in out), out
    return {
        canonicalize_name(name): Version(version)
        for name, _, version in (line.partition("==") for line in out)
        if version
    }


def install(script: str, *args: str | Path) -> None:
    proc = subprocess.run(
        ["sh", str(REPO / "deploy" / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.integration  # pip fetches the locked files from the package index (or its cache)
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("script", "venv", "lock", "project"),
    [
        # A host's venv holds loginwatch-host, the host side alone (deploy/host/).
        ("install-host.sh", "opt/loginwatch-host", "host.txt", "loginwatch-host"),
        ("install-central.sh", "opt/loginwatch", "central.txt", "loginwatch"),
    ],
)
def test_an_install_script_makes_a_venv_of_its_lock_and_upgrade_restores_it(
    tmp_path: Path, script: str, venv: str, lock: str, project: str
) -> None:
    root = tmp_path / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    install(script, "--root", root)
    python = root / venv / "bin" / "python"
    assert frozen(python, project) == locked("build.txt", lock)
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "pika"], check=True)
    install(script, "--root", root, "--upgrade")
    assert frozen(python, project) == locked("build.txt", lock)
