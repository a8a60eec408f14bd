"""Config: errors name the file and the key; secrets need strict modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer import settings
from schemas.config import (
    Config,
    SpoolConfig,
    broker_url,
    broker_user,
    config_path,
    load_config,
    parse_config,
    read_secret,
    seconds,
)
from schemas.errors import ConfigError


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[smtp]\nport = "x"', "f.toml: $.smtp.port: expected int, got str"),
        ("[smtp]\nprot = 25", "f.toml: $.smtp: object contains unknown field prot"),
        ('[broker]\nurl = "http://x"', "$.broker: expected an amqp:// or amqps:// URL"),
        ("[[route]]\nto = []", "$.route[0].to: expected array of length >= 1"),
        ('[[route]]\nto = ["a@b"]\nmode = "loud"', "$.route[0].mode: invalid enum value 'loud'"),
        ('[smtp]\nfrom = "not an address"', "$.smtp.from: expected str matching regex"),
        ("[smtp]\nstarttls = true\nssl = true", "$.smtp: starttls and ssl exclude each other"),
        ('[store]\nkeep = "3 fortnights"', "$.store.keep: expected str matching regex"),
        ("[spool]\nmax_events = 0", "$.spool.max_events: expected int >= 1"),
        ("smtp = ", "f.toml: not valid TOML"),
    ],
)
def test_errors_name_the_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(toml, "f.toml")
    assert message in str(info.value)


def test_empty_config_is_all_defaults() -> None:
    assert parse_config("") == Config()


def test_the_hook_fallback_matches_the_config_defaults() -> None:
    spool = SpoolConfig()
    assert (spool.dir, spool.max_events, spool.max_bytes) == settings.DEFAULT


def test_path_precedence() -> None:
    assert config_path("/a", {"LOGINWATCH_CONFIG": "/b"}) == "/a"
    assert config_path(None, {"LOGINWATCH_CONFIG": "/b"}) == "/b"
    assert config_path(None, {}) == "/etc/loginwatch/loginwatch.toml"


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret:/@\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match=r"\$.smtp.password_file: .*\(mode 0644\); chmod 600"):
        read_secret(str(secret), "$.smtp.password_file")
    os.chmod(secret, 0o600)
    assert read_secret(str(secret), "$.smtp.password_file") == "s3cret:/@"
    with pytest.raises(ConfigError, match=r"\$.broker.password_file: cannot read"):
        read_secret(str(tmp_path / "missing"), "$.broker.password_file")


def test_password_file_overrides_the_url_password(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p@ss/word\n")
    os.chmod(secret, 0o600)
    config = parse_config(
        f'[broker]\nurl = "amqps://host-web1:old@mq.example:5671/lw"\npassword_file = "{secret}"'
    )
    assert broker_url(config.broker) == "amqps://host-web1:p%40ss%2Fword@mq.example:5671/lw"
    assert broker_user(config.broker) == "host-web1"


@pytest.mark.parametrize(
    ("text", "value"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1d", 86400), ("1.5h", 5400)]
)
def test_durations(text: str, value: float) -> None:
    assert seconds(text) == value
