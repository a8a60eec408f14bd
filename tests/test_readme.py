"""The README's configuration reference names every key the config accepts."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from schemas.config import Config

README = Path(__file__).resolve().parent.parent / "README.md"


def _keys(struct: type[msgspec.Struct], section: str = "") -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for field in msgspec.structs.fields(struct):
        inner = field.type
        args = getattr(inner, "__args__", ())
        # tuple[Route, ...] and Route: a table (or array of tables) of its own.
        nested = next(
            (a for a in (inner, *args) if isinstance(a, type) and issubclass(a, msgspec.Struct)),
            None,
        )
        if nested is not None and not section:
            keys += _keys(nested, field.encode_name)
        elif section:
            keys.append((section, field.encode_name))
    return keys


def test_every_config_key_is_documented() -> None:
    text = README.read_text().split("## Configuration", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| `[")]
    missing = []
    for section, key in _keys(Config):
        pattern = rf"`\[{{1,2}}{section}\]{{1,2}} [^|]*\b{re.escape(key)}\b"
        if not any(re.search(pattern, row) for row in rows):
            missing.append(f"[{section}] {key}")
    assert not missing, f"README's Configuration table lacks: {', '.join(missing)}"
