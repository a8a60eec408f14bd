"""The command line loads what the named subcommand needs, and ``--help`` lists them all."""

from __future__ import annotations

import re
import subprocess
import sys

from consumer.cli import COMMANDS, build_parser

LOADED = (
    "import sys; from consumer.cli import build_parser; build_parser({argv!r});"
    " print(sorted(m for m in sys.modules if m.startswith(('consumer.alerts', 'psycopg'))))"
)


def loaded(argv: list[str]) -> str:
    code = LOADED.format(argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def test_an_admin_command_does_not_load_the_worker_or_the_store_drivers() -> None:
    assert loaded(["setup", "--config", "x.toml"]) == "[]"
    assert "consumer.alerts" not in loaded(["-v", "host", "add", "web-1"])


def test_the_worker_and_help_load_everything() -> None:
    assert "consumer.alerts.pipeline" in loaded(["worker"])
    assert "consumer.alerts.pipeline" in loaded([])


def test_help_lists_every_command_in_order() -> None:
    text = build_parser([]).format_help()
    places = [re.search(rf"^    {name}\b", text, re.MULTILINE).start()  # type: ignore[union-attr]
              for name in COMMANDS]  # fmt: skip
    assert places == sorted(places)


def test_an_unknown_command_is_refused_with_the_list() -> None:
    done = subprocess.run([sys.executable, "-m", "consumer.cli", "bogus"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "invalid choice: 'bogus'" in done.stderr
    assert "'broker-user'" in done.stderr
