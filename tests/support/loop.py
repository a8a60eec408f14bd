"""The whole "act on an alert" loop on real parts, for the integration tests, the browser
tier and the demo: a RabbitMQ vhost, an SMTP server, ``loginwatch worker`` and
``loginwatch web serve`` on loopback, sharing one store, with a route that asks the user
"was this you?" and one that hears escalations."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from consumer.store import Store, open_store
from schemas.event import LoginEvent, encode
from tests.support.services import Vhost
from tests.support.smtp_server import Received, SmtpServer, free_port, text_part
from tests.support.web_server import WebServer, web_section
from tests.support.worker_helpers import (
    ROOT,
    WorkerProcess,
    central_sections,
    loginwatch,
    publish,
    running_worker,
)

ROUTES = """
[[route]]
to = ["ops@test.example"]
kinds = ["login"]
ask = true

# The security team hears every "No, it wasn't me" at once (and gets only a digest else).
[[route]]
to = ["security@test.example"]
mode = "digest"
escalate = true

[notify_user]
template = "{user}@corp.test"
"""
LINK = re.compile(r"https?://127\.0\.0\.1:\d+/a/[a-z-]+/[A-Za-z0-9_.\-]+")


@dataclass
class Loop:
    vhost: Vhost
    smtp: SmtpServer
    worker: WorkerProcess
    web: WebServer
    config: Path
    store: Store

    def login(self, event: LoginEvent) -> None:
        publish(self.vhost, encode(event))

    def mail_to(self, address: str, about: str = "", timeout: float = 30) -> EmailMessage:
        """The first mail to ``address`` whose subject holds ``about`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for received in list(self.smtp.messages):
                if address in received.rcpt_tos and about in str(received.message["Subject"]):
                    return received.message
            time.sleep(0.02)
        raise AssertionError(f"no mail to {address}: {[m.rcpt_tos for m in self.smtp.messages]}")

    def to(self, address: str) -> list[Received]:
        return [m for m in list(self.smtp.messages) if address in m.rcpt_tos]


def links_of(mail: EmailMessage) -> dict[str, str]:
    """Each link of a mail's text part by its action (``answer-no``, ``ack`` …)."""
    found = LINK.findall(text_part(mail))
    return {url.split("/a/", 1)[1].split("/", 1)[0]: url for url in found}


class DigestProcess:
    """``loginwatch digest`` (it stores the events the operator page lists), stopped by pid."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "digest", "--config", str(config)],
            stdout=self._handle, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip

    def __enter__(self) -> DigestProcess:
        deadline = time.monotonic() + 60
        while "consuming" not in self.log.read_text("utf-8", "replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"loginwatch digest did not start:\n{self.log.read_text()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._handle.close()


@contextmanager
def running_loop(
    vhost: Vhost,
    tmp_path: Path,
    extra: str = "",
    *,
    digest: bool = False,
    maildir: Path | None = None,
) -> Iterator[Loop]:
    """Everything started (``digest``: the digest scheduler too, which stores the events the
    operator page lists), and stopped again by pid whatever happens."""
    with ExitStack() as stack:
        smtp = stack.enter_context(SmtpServer(maildir=maildir))
        port = free_port()
        config = tmp_path / "loginwatch.toml"
        central = central_sections(vhost.url(), smtp.port, tmp_path, "1, 2")
        central = central.replace("[worker]\n", '[worker]\nsilence_interval = "1s"\n')
        config.write_text(central + web_section(tmp_path, port) + ROUTES + extra,
                          encoding="utf-8")  # fmt: skip
        setup = loginwatch("setup", "--config", str(config))
        assert setup.returncode == 0, setup.stderr
        store = stack.enter_context(open_store(str(tmp_path / "store.db")))
        worker = stack.enter_context(running_worker(config, tmp_path / "worker.log"))
        web = stack.enter_context(WebServer(config, port, tmp_path / "web.log"))
        if digest:
            stack.enter_context(DigestProcess(config, tmp_path / "digest.log"))
        yield Loop(vhost, smtp, worker, web, config, store)
