"""Terminal escapes in every CLI table (issue 17, "also try"), with the real broker.

A broker user's name, a dead event's host and user, a runtime directory's name, a config
value in an error: each is someone's text, and the operator reads it in a terminal, where
``ESC ]0;…BEL`` retitles the window, ``ESC [2J`` clears it and a bidi override reorders
what follows. ``consumer/cli.py`` writes every command's output through
``consumer.core.display.InertStream``: whatever a command prints reaches the terminal
visible and inert, and a new command needs to do nothing for that.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from consumer.cli import main
from schemas import topology
from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost, rabbitmqctl
from tests.support.worker_helpers import connect, write_config

ESCAPES = ("\x1b", "\x07", "\u202e", "\x9b")
TITLE = "\x1b]0;owned\x07"
CLEAR = "\x1b[2J\u202e"


def shown_inert(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0) -> str:
    """``loginwatch ARGV`` run as the console script runs it: its output and errors, which
    must hold no escape."""
    assert main(list(argv)) == status
    shown = capsys.readouterr()
    both = shown.out + shown.err
    for bad in ESCAPES:
        assert bad not in both, repr(both)
    return both


@pytest.fixture
def config(vh: Vhost, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    made = write_config(tmp_path / "loginwatch.toml", vh)
    shown_inert(capsys, "setup", "--config", str(made))
    return made


def test_host_list_shows_a_hostile_broker_user_name_inert(
    vh: Vhost, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = f"host-{uuid.uuid4().hex[:6]}{CLEAR}{TITLE}"
    rabbitmqctl("add_user", user, "unused")
    try:
        rabbitmqctl("set_permissions", "-p", vh.name, user, "^$", "^loginwatch\\.events$", "^$")
        shown = shown_inert(capsys, "host", "list", "--config", str(config))
    finally:
        rabbitmqctl("delete_user", user, check=False)
    # (rabbitmqctl's JSON mangles ESC itself; the bidi override comes through, shown.)
    assert "[2J\\u202e" in shown


def test_dead_list_shows_a_hostile_event_inert(
    vh: Vhost, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = encode(event(host="web-1", user=f"{TITLE}root{CLEAR}"))
    with connect(vh) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", topology.DEAD_QUEUE, body, mandatory=True)
    assert "1 dead message(s)" in shown_inert(capsys, "dead", "list", "--config", str(config))


def test_status_shows_a_hostile_runtime_directory_inert(
    vh: Vhost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "run"
    (base / f"evil{TITLE}").mkdir(parents=True, mode=0o777)
    (base / f"evil{TITLE}").chmod(0o777)
    (base / f"evil{TITLE}" / "metrics.sock").write_text("")  # not even a socket
    made = write_config(tmp_path / "loginwatch.toml", vh,
                        extra=f'\n[metrics]\nruntime_dir = "{base}"\n')  # fmt: skip
    shown_inert(capsys, "setup", "--config", str(made))
    assert "ignored" in shown_inert(capsys, "status", "--config", str(made))


def test_an_error_naming_a_hostile_config_value_is_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = tmp_path / "loginwatch.toml"
    made.write_text(f'[smtp]\nhost = "relay{CLEAR}.example"\n'.replace("\x1b", "\\u001b"))
    shown = shown_inert(capsys, "check-config", "--config", str(made), status=1)
    assert "$.smtp: host is SMTP without TLS to relay␛[2J" in shown
