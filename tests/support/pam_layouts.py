"""The PAM layouts of fresh machines, vendored in tests/fixtures/pam (its README says where
each comes from): Debian 12 stock, Debian 12 with pam_cap, Ubuntu 24.04, RHEL 9 (authselect).

    root = layout_root("debian12", tmp_path / "root")   # root/etc/pam.d/sshd, common-auth …

Tests that compare what install-host.sh writes with a host's PAM files install into one of
these, not into a copy of this machine's /etc/pam.d, whose files depend on what this machine
happens to have installed (pam_cap in common-auth here, not on a fresh Debian 12).
"""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pam"
LAYOUTS = ("debian12", "debian12-pam_cap", "ubuntu2404", "rhel9")
# The layouts whose common-auth is as pam-auth-update writes it: failed passwords reported.
DEBIAN_FAMILY = ("debian12", "debian12-pam_cap", "ubuntu2404")


def layout_root(name: str, root: Path) -> Path:
    """``root`` with layout ``name``'s /etc (symlinks kept, as authselect makes them), and
    a stand-in for each module its files name that a stock Debian lacks (pam_cap.so: the
    installer checks that every module it writes into a PAM line exists)."""
    shutil.copytree(FIXTURES / name, root, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("README.md"))  # fmt: skip
    return root


def pam_bytes(root: Path) -> dict[str, bytes]:
    """Every file of ``root``'s PAM configuration (/etc/pam.d, /etc/authselect): its bytes."""
    found = {}
    for folder in ("etc/pam.d", "etc/authselect"):
        for path in sorted((root / folder).glob("*")):
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
            elif path.is_symlink():
                found[str(path.relative_to(root))] = b"-> " + str(path.readlink()).encode()
    return found
