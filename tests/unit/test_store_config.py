"""``[store] password_file``: a shared PostgreSQL's password lives in a file, never in the URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consumer.cli import main
from schemas.config import parse_config, store_password
from schemas.errors import ConfigError

PG = "postgresql://loginwatch@db.example:5432/loginwatch?sslmode=verify-full"


def secret(tmp_path: Path, text: str = "s3cret:/@ pass\n", mode: int = 0o600) -> Path:
    path = tmp_path / "store.password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    path.chmod(mode)
    return path


def test_the_password_comes_from_the_file_and_the_url_stays_without_it(tmp_path: Path) -> None:
    config = parse_config(f'[store]\nurl = "{PG}"\npassword_file = "{secret(tmp_path)}"')
    assert store_password(config.store) == "s3cret:/@ pass"
    assert config.store.url == PG


def test_no_password_file_means_no_password() -> None:
    assert store_password(parse_config(f'[store]\nurl = "{PG}"').store) is None


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            'url = "postgresql://loginwatch:hunter2@db.example/lw"\npassword_file = "/etc/pw"',
            "f.toml: $.store: url carries a password and password_file is set: keep the"
            " password in password_file only",
        ),
        (
            'url = "postgresql://loginwatch@db.example/lw?password=hunter2"\n'
            'password_file = "/etc/pw"',
            "$.store: url carries a password and password_file is set",
        ),
        (
            'url = "/var/lib/loginwatch/loginwatch.db"\npassword_file = "/etc/pw"',
            "f.toml: $.store: password_file is for a PostgreSQL store: url is a SQLite path",
        ),
        (
            f'url = "{PG}"\npassword_file = "secrets/pw"',
            "$.store: password_file 'secrets/pw' is not an absolute path",
        ),
    ],
)
def test_bad_combinations_name_the_keys(store: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[store]\n{store}", "f.toml")
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_password_file_others_can_read_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = parse_config(
        f'[store]\nurl = "{PG}"\npassword_file = "{secret(tmp_path, mode=0o644)}"'
    )
    with pytest.raises(ConfigError, match=r"^\$\.store\.password_file: .*\(mode 0644\); chmod 600"):
        store_password(config.store)


def test_check_config_checks_the_store_password_file_and_never_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = secret(tmp_path)
    toml = tmp_path / "loginwatch.toml"
    toml.write_text(f'[store]\nurl = "{PG}"\npassword_file = "{path}"\n')
    assert main(["check-config", "--config", str(toml), "--as-user", "root"]) == 0
    out = capsys.readouterr().out
    assert f"  store   {PG}" in out
    assert str(path) in out  # listed among the secret files checked
    assert "s3cret" not in out
    path.chmod(0o640)
    assert main(["check-config", "--config", str(toml), "--as-user", "root"]) == 1
    assert "$.store.password_file" in capsys.readouterr().err


def test_check_config_hides_a_password_written_into_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "loginwatch.toml"
    toml.write_text(
        '[store]\nurl = "postgresql://loginwatch:hunter2@db.example/lw"\nallow_plaintext = true\n'
    )
    assert main(["check-config", "--config", str(toml), "--as-user", "root"]) == 0
    out = capsys.readouterr().out
    assert "postgresql://loginwatch:***@db.example/lw" in out
    assert "hunter2" not in out


def test_check_config_hides_a_password_in_the_url_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "loginwatch.toml"
    toml.write_text(
        '[store]\nurl = "postgresql://lw@db.example/lw?sslmode=require&password=x7"\n'
        "allow_plaintext = true\n"
    )
    assert main(["check-config", "--config", str(toml), "--as-user", "root"]) == 0
    out = capsys.readouterr().out
    assert "postgresql://lw@db.example/lw?sslmode=require&password=***" in out
    assert "x7" not in out
