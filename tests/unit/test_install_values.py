"""``python -I -m producer.install_values FILE``: what deploy/install-host.sh reads of a host
config, through the project's own parser (the script used to carry this as a ``-c`` string,
where neither mypy nor the import check saw it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from producer.install_values import main


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_prints_the_spool_and_the_password_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, '[spool]\ndir = "/var/spool/lw"\n[broker]\npassword_file = "/etc/p"\n')
    assert main([str(path)]) == 0
    assert capsys.readouterr().out == "/var/spool/lw\n/etc/p\n"


def test_defaults_count_and_no_password_file_is_an_empty_line(tmp_path: Path) -> None:
    path = config(tmp_path, "")
    done = subprocess.run([sys.executable, "-I", "-m", "producer.install_values", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "/var/spool/loginwatch\n\n"


def test_a_refused_config_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "[spool]\ndir = 3\n")
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"install-host: {path}: $.spool.dir: expected str, got int")
    assert err.count("\n") == 1


def test_a_path_with_a_line_break_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, '[broker]\npassword_file = "/etc/p\\n/etc/shadow"\n')
    assert main([str(path)]) == 1
    assert "not a plain absolute path" in capsys.readouterr().err
