"""The docs say what the code does: every config key is in the reference, and the PAM snippet
is what the installer writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import msgspec

from schemas.config import Config
from schemas.receivers import Receiver
from tests.support.deploy_host import VENV, run_install
from tests.support.pam_layouts import layout_root

DOCS = Path(__file__).resolve().parents[3] / "docs"


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
    text = (DOCS / "configuration.md").read_text().split("## Configuration", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| `[")]
    missing = []
    for section, key in _keys(Config):
        pattern = rf"`\[{{1,2}}{section}\]{{1,2}} [^|]*\b{re.escape(key)}\b"
        if not any(re.search(pattern, row) for row in rows):
            missing.append(f"[{section}] {key}")
    assert not missing, f"docs/configuration.md's table lacks: {', '.join(missing)}"


def test_every_receiver_key_is_documented() -> None:
    # [receiver.NAME] sections are a table of tagged kinds (schemas/receivers.py): each key of
    # each kind must be in a row of its own section that names the kind, or "every kind".
    text = (DOCS / "configuration.md").read_text().split("## Configuration", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| `[receiver.NAME] ")]
    missing = []
    for kind in get_args(Receiver):
        tag = kind.__struct_config__.tag
        for field in msgspec.structs.fields(kind):
            if not any(
                re.search(rf"\b{re.escape(field.encode_name)}\b", row.split("|")[1])
                and (tag in row.split("|")[1] or "every kind" in row or field.name == "kind")
                for row in rows
            ):
                missing.append(f"[receiver.NAME] {field.encode_name} ({tag})")
    assert not missing, f"docs/configuration.md's table lacks: {', '.join(missing)}"


def test_the_pam_snippet_is_what_the_installer_writes(tmp_path: Path) -> None:
    # docs/host-hook.md shows a fresh Debian 12's /etc/pam.d/sshd after install-host.sh
    # (tests/fixtures/pam/debian12): each of its lines (whitespace aside) must be in the
    # installed file, in order, and every line the installer added must be in the page.
    layout_root("debian12", tmp_path / "root")
    config = tmp_path / "host.toml"
    config.write_text('[broker]\nurl = "amqp://127.0.0.1:1/%2F"\n')
    run_install("--root", tmp_path / "root", "--venv", VENV, "--config", config)
    installed = [
        line.split() for line in (tmp_path / "root/etc/pam.d/sshd").read_text().splitlines()
    ]
    section = (DOCS / "host-hook.md").read_text().split("## The host hook", 1)[1]
    block = section.split("\n```\n", 2)[1].split("\n```", 1)[0]
    shown = [line.split() for line in block.splitlines() if line != "…"]
    assert shown[0][:2] == ["#", ">>>"], "docs/host-hook.md's first code block in 'The host hook'"
    rest = iter(installed)
    missing_lines = [" ".join(line) for line in shown if not any(line == other for other in rest)]
    assert missing_lines == [], "lines of docs/host-hook.md not installed (or out of order)"
    inside, added = False, []
    for line in installed:
        if line[:2] == ["#", ">>>"]:
            inside = True
        if inside:
            added.append(line)
        if line[:2] == ["#", "<<<"]:
            inside = False
    assert [line for line in added if line not in shown] == []
