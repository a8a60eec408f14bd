"""Durations are converted once, where the config is decoded: a value with its seconds and
its text, refused with the key's name, equal when the lengths are."""

from __future__ import annotations

import pytest

from schemas.config import Config, Duration, parse_config
from schemas.errors import ConfigError


def test_a_decoded_duration_carries_its_seconds_and_its_text() -> None:
    config = parse_config('[store]\nkeep = "7d"\n[digest]\nlease = "1.5m"')
    assert (config.store.keep.seconds, config.store.keep.text) == (604800, "7d")
    assert (config.digest.lease.seconds, str(config.digest.lease)) == (90, "1.5m")
    assert Config().policy.flood_window == Duration("10m") == Duration("600s")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[store]\nkeep = 90", "f.toml: $.store.keep: expected str, got int"),
        ('[digest]\nlease = "30 s"', "f.toml: $.digest.lease: expected str matching regex"),
        ('[policy]\nflood_window = "10m\\n"', "f.toml: $.policy.flood_window: not a duration"),
    ],
)
def test_a_bad_duration_names_its_key(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(toml, "f.toml")
    assert message in str(info.value)


def test_a_duration_cannot_be_changed() -> None:
    with pytest.raises(AttributeError):
        Duration("1h").seconds = 1
    with pytest.raises(ValueError, match="not a duration"):
        Duration("1 hour")
