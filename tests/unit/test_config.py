"""Config: errors name the file and the key; secrets need strict modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer import settings
from schemas import files
from schemas.config import Config, SpoolConfig, config_path, load_config, parse_config, seconds
from schemas.errors import ConfigError
from schemas.files import read_secret
from schemas.nodes import broker_url, broker_user
from schemas.transport import plaintext_refusal


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


def test_secret_files_must_be_owned_by_the_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o600)
    os.chown(secret, 4242, 4242)  # mode 0600, but someone else's: they can read and change it
    with pytest.raises(
        ConfigError,
        match=r"^\$\.broker\.password_file: .*/pw is owned by uid 4242, not by root \(uid 0\)"
        r" who reads it: chown it, or run as its owner$",
    ):
        read_secret(str(secret), "$.broker.password_file")
    # Root may use the central service user's own secrets (`loginwatch setup` as root).
    monkeypatch.setattr(files, "_service_uid", lambda: 4242)
    assert read_secret(str(secret), "$.broker.password_file") == "s3cret"


def test_a_secret_that_is_no_file_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pw"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match=r"^\$\.smtp\.password_file: .*/pw is not a regular file"):
        read_secret(str(fifo), "$.smtp.password_file")
    with pytest.raises(ConfigError, match=r"^\$\.smtp\.password_file: "):
        read_secret(str(tmp_path), "$.smtp.password_file")


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        "amqp://u:p@127.8.9.10/",
        "amqp://u:p@localhost/",
        "amqp://u:p@LocalHost:5672/",
        "amqp://u:p@[::1]:5672/",
        "amqp://u:p@[::ffff:127.0.0.1]/",
        "amqp:///",
        "amqps://u:p@mq.example.org/",
    ],
)
def test_plain_amqp_is_fine_on_loopback(url: str) -> None:
    assert parse_config(f'[broker]\nurl = "{url}"').broker.url == url


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("amqp://host-web1:pw@mq.example.org:5672/lw", "mq.example.org"),
        ("amqp://u:p@10.0.0.5/", "10.0.0.5"),
        ("amqp://u:p@[2001:db8::1]/", "2001:db8::1"),
        ("amqp://u:p@localhost.example.org/", "localhost.example.org"),
        ("amqp://u:p@127.0.0.1.nip.io/", "127.0.0.1.nip.io"),
        ("amqp://u:p@127.0.0.1@evil.example/", "evil.example"),  # pika connects to evil
        ("amqp://u:p@0.0.0.0/", "0.0.0.0"),
        ("amqp://u:p@2130706433/", "2130706433"),  # a resolver's 127.0.0.1; never resolved
    ],
)
def test_plain_amqp_to_another_machine_needs_allow_plaintext(url: str, host: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f'[broker]\nurl = "{url}"', "f.toml")
    assert str(info.value) == (
        f"f.toml: $.broker: url is amqp:// to {host}, which would send the broker password"
        " unencrypted: use amqps://, or set allow_plaintext = true"
    )
    allowed = parse_config(f'[broker]\nurl = "{url}"\nallow_plaintext = true')
    assert allowed.broker.allow_plaintext


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


@pytest.mark.parametrize(
    ("host", "encrypted", "allowed", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("::1", False, False, False),
        ("localhost", False, False, False),
        (None, False, False, False),  # no host: the client's default, localhost
        ("localhost.example.org", False, False, True),  # a name is never resolved
        ("mq.example.org", False, False, True),
        ("mq.example.org", True, False, False),
        ("mq.example.org", False, True, False),
    ],
)
def test_one_transport_rule(
    host: str | None, encrypted: bool, allowed: bool, refused: bool
) -> None:
    why = plaintext_refusal("$.x.url", host, encrypted=encrypted, allow_plaintext=allowed,
                            plain="x://", what="the x password", fix="use xs://")  # fmt: skip
    assert (why is not None) is refused
    if why:
        assert why == (
            f"$.x.url is x:// to {host}, which would send the x password unencrypted:"
            " use xs://, or set allow_plaintext = true"
        )
