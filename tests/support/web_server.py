"""``loginwatch web serve`` as a subprocess on loopback, and what its tests share: the key
and password files (0600), a config section, pulling forms apart, snapshots of its tables."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import httpx

from consumer.store.backends import Database
from consumer.web import auth
from tests.support.worker_helpers import ROOT

PASSWORD: Final = "correct horse battery staple"
OPERATOR: Final = "oscar"
# The tables a GET must never change: a scanner's visit shows as a difference here.
WATCHED: Final = ("silence", "question", "answer", "web_nonce", "web_session", "web_operator",
                  "delivery_log")  # fmt: skip


def web_files(directory: Path) -> tuple[Path, Path]:
    """A link key file and a password file with ``OPERATOR``'s password, both 0600."""
    keys = directory / "web-keys"
    passwords = directory / "web-passwords"
    hashed = auth.hash_password(PASSWORD, n=2**14)
    for path, text in ((keys, secrets.token_urlsafe(48)), (passwords, f"{OPERATOR}:{hashed}")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
    return keys, passwords


def web_section(directory: Path, port: int) -> str:
    """``[web]`` for a server on 127.0.0.1:``port`` (http on loopback: Secure cookies work)."""
    keys, passwords = web_files(directory)
    return f"""
[web]
listen = "127.0.0.1:{port}"
base_url = "http://127.0.0.1:{port}"
secret_file = "{keys}"
password_file = "{passwords}"
"""


def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the watched tables, in a stable order."""
    return {table: sorted(db.execute(f"SELECT * FROM {table}"), key=repr)
            for table in WATCHED}  # fmt: skip


def field(html: str, name: str) -> str:
    """The value of the hidden input ``name`` of a page."""
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"no {name} in the page:\n{html[:2000]}"
    return found[1]


class WebServer:
    """``loginwatch web serve --config CONFIG``, up once /healthz answers; a context manager."""

    def __init__(self, config: Path, port: int, log: Path, env: Mapping[str, str] | None = None):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._handle = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "web", "serve", "--config", str(config)],
            stdout=self._handle, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )  # fmt: skip

    def wait_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"loginwatch web did not start:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def __enter__(self) -> WebServer:
        self.wait_up()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._handle.close()
