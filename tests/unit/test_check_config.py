"""`loginwatch check-config` run as root checks what the service user can read (issue 10.3).

Root can read every file, so a check made as root said "ok" for a password file
the units, which run as `loginwatch`, could not open. The check now forks a
child that becomes the service user (setgid, initgroups, setuid) and reads the
config and each secret as it. This machine has no `loginwatch` user, so the
tests use `nobody` (uid 65534) in its place, through --as-user and through the
default itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.commands import check_config
from tests.support.deploy_host import traversable_dir

NOBODY = 65534


def setup_files(
    *, secret_owner: int = 0, config_mode: int = 0o644, secret_dir_mode: int = 0o755
) -> Path:
    """A config in a directory anyone may traverse, naming a 0600 broker password file."""
    base = traversable_dir()
    secrets = base / "secrets"
    secrets.mkdir()
    secrets.chmod(secret_dir_mode)
    secret = secrets / "broker.password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    os.chown(secret, secret_owner, secret_owner)
    config = base / "loginwatch.toml"
    config.write_text(
        f'[broker]\nurl = "amqp://loginwatch@127.0.0.1/"\npassword_file = "{secret}"\n'
    )
    config.chmod(config_mode)
    return config


def check(config: Path, *args: str) -> int:
    return main(["check-config", "--config", str(config), *args])


def test_a_password_file_only_root_can_read_is_not_fine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = setup_files(secret_owner=0)
    assert check(config, "--as-user", "nobody") == 1
    err = capsys.readouterr().err
    assert "as nobody, who must read it: $.broker.password_file: cannot read" in err
    assert "Permission denied" in err


def test_a_password_file_the_service_user_owns_is_fine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = setup_files(secret_owner=NOBODY)
    assert check(config, "--as-user", "nobody") == 0
    assert "  reader  nobody can read the config and every secret file\n" in capsys.readouterr().out


def test_a_config_the_service_user_cannot_read_is_not_fine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = setup_files(secret_owner=NOBODY, config_mode=0o600)
    assert check(config, "--as-user", "nobody") == 1
    err = capsys.readouterr().err
    assert "as nobody, who must read it: " in err
    assert "cannot read config: [Errno 13] Permission denied" in err


def test_a_password_file_in_a_directory_the_service_user_cannot_enter_is_not_fine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = setup_files(secret_owner=NOBODY, secret_dir_mode=0o700)
    assert check(config, "--as-user", "nobody") == 1
    assert "$.broker.password_file: cannot read" in capsys.readouterr().err


def test_as_root_the_default_is_the_service_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root only")
    monkeypatch.setattr(check_config, "SERVICE_USER", "nobody")
    assert check(setup_files(secret_owner=0)) == 1
    assert "as nobody, who must read it" in capsys.readouterr().err


def test_without_the_service_user_it_says_it_checked_as_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root only")
    monkeypatch.setattr(check_config, "SERVICE_USER", "no-such-user-here")
    assert check(setup_files(secret_owner=0)) == 0
    assert "no user no-such-user-here here: checked as root" in capsys.readouterr().out
