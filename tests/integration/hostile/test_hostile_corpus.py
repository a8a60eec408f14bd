"""The known-nasty corpus (tests/integration/hostile/corpus.json) through every real part.

Each case: the real ``loginwatch-hook`` runs with the hostile PAM/SSH environment, its
publisher sends the event to the real RabbitMQ, one ``loginwatch worker`` (shared by the
cases) mails it to a real aiosmtpd server; the test reads the mail as a client would.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from schemas import topology
from tests.support.hookrun import PAM_ENV, run_hook
from tests.support.hookrun import write_config as host_config
from tests.support.services import Vhost, fresh_vhost
from tests.support.smtp_server import Received, SmtpServer
from tests.support.worker_helpers import (
    WorkerProcess,
    depth,
    loginwatch,
    running_worker,
    write_config,
)

pytestmark = pytest.mark.integration

CORPUS = json.loads((Path(__file__).parent / "corpus.json").read_text("utf-8"))
CASES = {case["id"]: case for case in CORPUS["cases"]}
EXPECTED_HEADERS = [
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "X-Loginwatch-Event", "X-Loginwatch-Action", "MIME-Version", "Content-Type",
]  # fmt: skip
# Raw bytes that must never reach a mail: they would end a header line, reorder or hide text.
NEVER_ON_THE_WIRE = (b"\x00", b"\r\r", "\u202e".encode(), "\u2066".encode(), "\u200b".encode())
# The encoded words email itself writes for a non-ASCII subject; no other may reach the wire.
OWN_WORD = re.compile(rb"=\?utf-8\?[bq]\?[^?\s]*\?=")
# What the worker's log handler writes (consumer/cli.py): event text never starts a line.
LOG_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


class _Live(HTMLParser):
    """Tags and event-handler attributes that event text could smuggle into the HTML part."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "img", "iframe", "object", "svg", "b"):
            self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


@dataclass
class Pipeline:
    smtp: SmtpServer
    worker: WorkerProcess
    hook_config: Path
    vhost: Vhost


@pytest.fixture(scope="module")
def pipeline(vhost: Vhost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("hostile")
    host_dir = tmp / "host"
    host_dir.mkdir()
    with fresh_vhost("loginwatch-hostile") as mine, SmtpServer() as smtp:
        # Flood control would fold the later cases into the digest: lift it for this run.
        config = write_config(
            tmp / "loginwatch.toml", mine, smtp_port=smtp.port, extra="[policy]\nflood_max = 1000"
        )
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp / "worker.log") as worker:
            yield Pipeline(smtp, worker, host_config(host_dir, mine.url()), mine)


def hook_env(case: dict[str, Any]) -> dict[str, str | bytes]:
    env: dict[str, str | bytes] = {} if case.get("env_only") else dict(PAM_ENV)
    env.update(case.get("env", {}))
    env.update({key: bytes.fromhex(value) for key, value in case.get("env_hex", {}).items()})
    env.update({key: piece * n for key, (piece, n) in case.get("env_repeat", {}).items()})
    return env


def next_mail(smtp: SmtpServer, seen: int, timeout: float = 20) -> Received:
    mails = smtp.wait_for(seen + 1, timeout=timeout)
    assert len(mails) == seen + 1, f"no mail for this case ({len(mails) - seen} new)"
    time.sleep(0.2)  # a second mail for the same case would arrive right behind it
    assert len(smtp.messages) == seen + 1, "one event, more than one mail"
    return mails[-1]


def body(mail: EmailMessage, kind: str) -> str:
    part = mail.get_body((kind,))
    assert part is not None, f"no {kind} part"
    return str(part.get_content())


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_value_arrives_as_inert_text(pipeline: Pipeline, case: dict[str, Any]) -> None:
    seen = len(pipeline.smtp.messages)
    run = run_hook(pipeline.hook_config, env=hook_env(case))
    assert run.returncode == 0, run.stderr
    received = next_mail(pipeline.smtp, seen)
    mail = received.message

    assert received.rcpt_tos == ("ops@test.example",)
    assert list(mail.keys()) == EXPECTED_HEADERS  # no header added, none dropped
    assert mail["To"] == "ops@test.example"
    subject = str(mail["Subject"]).strip()
    # The cases share one store: a user's source or key is new the first time it is seen.
    firsts = ("NEW SOURCE: Login ", "NEW KEY: Login ", "Login ")
    assert subject.isprintable() and subject.startswith(firsts), subject
    # An encoded word in event text is shown ("=？"), never decoded: none but email's own
    # UTF-8 words in the raw header block, and none left in the subject a client shows.
    head = received.data.partition(b"\r\n\r\n")[0]
    assert b"=?" not in OWN_WORD.sub(b"", head), head
    assert "=?" not in subject
    for bad in NEVER_ON_THE_WIRE:
        assert bad not in received.data
    text, html = body(mail, "plain").replace("\r\n", "\n"), body(mail, "html")
    # The whole mail arrived: no "." line or stray CR/LF ended the DATA early.
    assert "loginwatch · event" in text and "</html>" in html.lower()
    live = _Live(html)
    assert not live.tags and not live.handlers, "event text became live HTML"

    who = case.get("who")
    if "who_repeat" in case:
        piece, count = case["who_repeat"]
        who = piece * count
    if who is not None:
        assert f"  Who        {who}\n" in text
    if "subject" in case:
        assert case["subject"] in subject
    for needle in case.get("text", []):
        assert needle in text
    for needle in case.get("html", []):
        assert needle in html
    log = pipeline.worker.text().splitlines()
    assert all(LOG_LINE.match(line) for line in log), "a worker log line it did not start"
    for forged in case.get("log_never", []):
        assert not any(line.startswith(forged) for line in log), f"forged log line {forged!r}"
    assert pipeline.worker.proc.poll() is None, "the worker died"
    assert depth(pipeline.vhost, topology.DEAD_QUEUE) == 0
