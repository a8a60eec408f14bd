"""The fleet tier (``make fleet``): other Debian releases' Pythons in chroots, the offline
bundle, the .deb and .rpm, the Ansible role, hosts of an older release, and the installers
run whole as an operator runs them (both on one machine, the fleet install of docs/install.md:
minutes each, so not in ``make test``). The chroot tests need root, the cached chroots
(``make chroots``) and the bundle (``make host-bundle``): without them they skip locally and
fail under CI. Not part of ``make test`` (pyproject's testpaths)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chroot import Chroot, unpacked
from tests.support.deploy_host import pam_tree
from tests.support.host_side import tap  # noqa: F401


@pytest.fixture(params=["11", "13"], ids=["debian11-py3.9", "debian13-py3.13"])
def debian(request: pytest.FixtureRequest) -> Iterator[Chroot]:
    """A fresh Debian 11 (python3 3.9.2) and then Debian 13 (3.13) root, per test."""
    with unpacked(request.param) as chroot:
        yield chroot


@pytest.fixture
def debian11() -> Iterator[Chroot]:
    """A fresh Debian 11: python3 3.9.2, no python3-venv (no ensurepip, no distutils)."""
    with unpacked("11") as chroot:
        yield chroot


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A host tree with a copy of this machine's /etc/pam.d (the installers' --root)."""
    return pam_tree(tmp_path)
