"""The installers' tests: install-host.sh and install-central.sh run against host trees in a
temporary directory, never against the machine's own /etc."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.deploy_host import pam_tree


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A host tree with a copy of this machine's /etc/pam.d."""
    return pam_tree(tmp_path)
