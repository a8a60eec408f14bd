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


def test_each_peer_s_transport_is_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "loginwatch.toml"
    config.write_text(
        '[broker]\nurls = ["amqps://lw@mq1.example/%2F", "amqps://lw@mq2.example:5673/%2F"]\n'
        'ca_file = "/etc/loginwatch/ca.pem"\n'
        '[store]\nurl = "postgresql://lw@db.example/lw"\nca_file = "/etc/loginwatch/db-ca.pem"\n'
        '[smtp]\nhost = "relay.example"\nport = 587\nstarttls = true\n'
    )
    assert check(config, "--as-user", "root") == 0
    shown = capsys.readouterr().out
    assert "  peer    broker mq1.example:5671 verified TLS\n" in shown
    assert "  peer    broker mq2.example:5673 verified TLS\n" in shown
    assert "  peer    store db.example:5432 verified TLS (verify-full)\n" in shown
    assert "  peer    smtp relay.example:587 STARTTLS, verified\n" in shown
    config.write_text('[smtp]\nhost = "relay.example"\nallow_plaintext = true\n')
    assert check(config, "--as-user", "root") == 0
    shown = capsys.readouterr().out
    assert "  peer    broker 127.0.0.1:5672 plain (loopback)\n" in shown
    assert "  peer    smtp relay.example:25 PLAIN TEXT (allow_plaintext)\n" in shown
    assert "  peer    store /var/lib/loginwatch/loginwatch.db (SQLite, this machine)\n" in shown


def test_an_escape_in_the_config_reaches_no_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "loginwatch.toml"
    config.write_text('[smtp]\nfrom = "lw\\u001b]2;pwned\\u0007@example.org"\n')
    assert check(config, "--as-user", "root") == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown
    assert "from lw␛]2;pwned␇@example.org" in shown
