"""Real HTTP servers of our own on loopback, one per channel, standing in for its API.

    with ReceiverServer("slack") as slack:             # 127.0.0.1, a free port
        slack.answer(429, retry_after=1)               # the next POST gets a 429
        slack.answer(DROP)                             # the one after: the connection cut
        ... deliver to slack.url ...
        slack.wait_for(1)                              # the accepted posts, bounded wait
        slack.problems                                 # what a real service would refuse

Each server checks what the channel's public API documentation asks of a request (the path,
the headers, the JSON body's shape; a webhook's Standard Webhooks signature with the
reference library ``standardwebhooks`` and its body against the shipped JSON Schema), records
any breach in ``problems`` and answers such a request 400, as the service would. Faults are
consumed one per POST, in order: a status (with ``retry_after``, sent as the header and, for
Telegram and Discord, in the channel's own JSON field), ``DROP`` (close without answering:
nothing stored) or ``DROP_AFTER_ACCEPT`` (store the post, then close before answering: the
unknowable window). ``tls=True`` serves HTTPS with a throwaway self-signed certificate whose
file is ``cert_file``. ``secret_files`` writes the receiver's secrets (mode 0600) and
``section`` the ``[receiver.NAME]`` TOML that points at this server.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import jsonschema
import standardwebhooks

from consumer.channels.webhook import schema

DROP: Final = -1
DROP_AFTER_ACCEPT: Final = -2
KINDS: Final = ("webhook", "slack", "mattermost", "teams", "telegram", "ntfy", "discord", "apprise")
TOKEN: Final = "123456:AAH-test_TOKEN-telegram-0123456789"
SIGNING_KEYS: Final = (
    "whsec_" + base64.b64encode(b"k" * 32).decode(),
    "whsec_" + base64.b64encode(b"r" * 32).decode(),
)
PATHS: Final = {
    "webhook": "/hooks/loginwatch",
    "slack": "/services/T0000/B0000/slacksecretXXXXXXXXXXXX",
    "mattermost": "/hooks/mattermostsecret0000000000",
    "teams": "/workflows/0a1b2c/triggers/manual/paths/invoke",
    "telegram": f"/bot{TOKEN}/sendMessage",
    "ntfy": "/",
    "discord": "/api/webhooks/112233445566/discordSECRET-token_0000",
    "apprise": "/apprise/lw",  # Apprise's generic json:// service
}
TEAMS_SIG: Final = "teamsSIGsecret0000"
NTFY_TOKEN: Final = "tk_ntfysecrettoken0000000000000"
APPRISE_TOKEN: Final = "appriseSECRETtoken0000"


@dataclass(frozen=True)
class Post:
    """One request the server accepted."""

    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    connection: int  # which TCP connection it came on (reuse shows as the same number)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Answer:
    status: int
    retry_after: float | None = None


@dataclass
class ReceiverServer:
    """A channel's API on 127.0.0.1 in a thread; a context manager."""

    kind: str
    tls: bool = False
    port: int = 0
    posts: list[Post] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    attempts: int = 0
    connections: int = 0
    on_post: Any = None  # called (in the server's thread) with each accepted Post
    on_answered: Any = None  # called (in the server's thread) once a 2xx went out
    cut_after_accept: list[Post] = field(default_factory=list)  # stored, never answered

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: deque[_Answer] = deque()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"lw-{self.kind}-")
        self.dir = Path(self._tmp.name)
        self.cert_file: str | None = None
        self._server: ThreadingHTTPServer | None = None

    # -- the test's side ---------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL the receiver's config gives (with its secret, where it holds one)."""
        if self.kind == "teams":
            return f"{self.base}{PATHS['teams']}?api-version=2016-06-01&sp=x&sv=1.0&sig={TEAMS_SIG}"
        if self.kind == "telegram":
            return self.base
        if self.kind == "apprise":
            scheme = "jsons" if self.tls else "json"
            return f"{scheme}://127.0.0.1:{self.port}{PATHS['apprise']}?+X-Token={APPRISE_TOKEN}"
        return self.base + PATHS[self.kind]

    def secrets(self) -> tuple[str, ...]:
        """Every secret this receiver's config holds (what must never be printed)."""
        return {
            "webhook": SIGNING_KEYS,
            "slack": (PATHS["slack"].rsplit("/", 1)[1],),
            "mattermost": (PATHS["mattermost"].rsplit("/", 1)[1],),
            "teams": (TEAMS_SIG,),
            "telegram": (TOKEN,),
            "ntfy": (NTFY_TOKEN,),
            "discord": (PATHS["discord"].rsplit("/", 1)[1],),
            "apprise": (APPRISE_TOKEN,),
        }[self.kind]

    def answer(self, *statuses: int, retry_after: float | None = None) -> None:
        """The next POSTs get these answers, one each, in order (then 2xx again)."""
        with self.lock:
            self.faults.extend(_Answer(status, retry_after) for status in statuses)

    def wait_for(self, count: int, timeout: float = 30) -> list[Post]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posts) >= count:
                    return list(self.posts)
            time.sleep(0.05)
        raise AssertionError(
            f"{self.kind}: {len(self.posts)} post(s), not {count}: {self.problems}"
        )

    def secret_file(self, name: str, text: str) -> str:
        path = self.dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
        return str(path)

    def section(self, name: str, extra: str = "") -> str:
        """The ``[receiver.NAME]`` section for this server, its secrets in 0600 files."""
        lines = [f"[receiver.{name}]", f'kind = "{self.kind}"', "timeout = 5"]
        if self.kind == "webhook":
            lines += [
                f'url = "{self.url}"',
                f'secret_file = "{self.secret_file("keys", chr(10).join(SIGNING_KEYS))}"',
            ]
        elif self.kind == "telegram":
            lines += [
                f'api_url = "{self.base}"',
                "chat_id = -1001234567890",
                f'token_file = "{self.secret_file("token", TOKEN)}"',
            ]
        elif self.kind == "ntfy":
            lines += [
                f'url = "{self.base}"',
                'topic = "lw-alerts"',
                f'token_file = "{self.secret_file("token", NTFY_TOKEN)}"',
            ]
        else:
            lines.append(f'url_file = "{self.secret_file("url", self.url)}"')
        if self.cert_file:
            lines.append(f'ca_file = "{self.cert_file}"')
        return "\n".join(lines) + f"\n{extra}\n"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ReceiverServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls:
            self._server.socket = self._context().wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()

    def _context(self) -> ssl.SSLContext:
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(cert),
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.cert_file = str(cert)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    # -- what each API asks of a request ---------------------------------------------

    def check(self, post: Post) -> list[str]:
        """What the service would refuse in ``post`` (empty: nothing)."""
        found: list[str] = []
        expected = PATHS[self.kind]
        if post.path != expected:
            found.append(f"path {post.path!r}, not {expected!r}")
        if not post.headers.get("content-type", "").startswith("application/json"):
            found.append("Content-Type is not application/json")
        try:
            body = post.json
        except ValueError:
            return [*found, "the body is not JSON"]
        found += _CHECKS[self.kind](self, post, body)
        return found


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a reused connection shows in ``connection``
    server_owner: ReceiverServer

    def setup(self) -> None:
        super().setup()
        owner = self.server_owner
        with owner.lock:
            owner.connections += 1
            self.number = owner.connections

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server_owner
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path, _, query = self.path.partition("?")
        post = Post(path, query, {k.lower(): v for k, v in self.headers.items()}, body, self.number)
        with owner.lock:
            owner.attempts += 1
            fault = owner.faults.popleft() if owner.faults else None
        if fault is not None and fault.status == DROP:
            self._cut()
            return
        problems = owner.check(post)
        if problems:
            with owner.lock:
                owner.problems += problems
            self._reply(400, {"error": "; ".join(problems)})
            return
        if fault is not None and fault.status != DROP_AFTER_ACCEPT:
            self._fail(fault)
            return
        with owner.lock:
            owner.posts.append(post)
        if owner.on_post is not None:
            owner.on_post(post)
        if fault is not None:  # DROP_AFTER_ACCEPT
            with owner.lock:
                owner.cut_after_accept.append(post)
            self._cut()
            return
        self._ok()
        self.wfile.flush()
        if owner.on_answered is not None:
            owner.on_answered(post)

    def _cut(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _ok(self) -> None:
        kind = self.server_owner.kind
        if kind == "telegram":
            self._reply(200, {"ok": True, "result": {"message_id": 1, "chat": {"id": -1}}})
        elif kind == "discord":
            self._reply(200, {"id": "1", "type": 0, "content": "…"})
        elif kind == "ntfy":
            self._reply(200, {"id": "x1", "event": "message", "topic": "lw-alerts"})
        elif kind == "teams":
            self._reply(202, None)
        elif kind in ("slack", "mattermost", "apprise"):
            self._reply(200, "ok")
        else:
            self._reply(204, None)

    def _fail(self, fault: _Answer) -> None:
        kind, headers = self.server_owner.kind, {}
        body: Any = {"error": f"{fault.status}"}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
            if kind == "telegram":
                headers = {}  # Telegram says it in the body only
                body = {"ok": False, "error_code": 429,
                        "description": f"Too Many Requests: retry after {fault.retry_after:g}",
                        "parameters": {"retry_after": fault.retry_after}}  # fmt: skip
            elif kind == "discord":
                body = {"message": "You are being rate limited.",
                        "retry_after": fault.retry_after, "global": False}  # fmt: skip
        self._reply(fault.status, body, headers)

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, str) else json.dumps(body))
        raw = data.encode() if isinstance(data, str) else data
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if raw:
            self.send_header("Content-Type", "text/plain" if isinstance(body, str)
                             else "application/json")  # fmt: skip
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def _webhook(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    found = []
    for key in SIGNING_KEYS:  # each key must verify: rotation without a gap
        try:
            standardwebhooks.Webhook(key).verify(post.body, post.headers)
        except standardwebhooks.WebhookVerificationError as exc:
            found.append(f"webhook-signature does not verify with a key: {exc}")
    if not post.headers.get("webhook-id", "").startswith("lw_"):
        found.append("webhook-id missing")
    try:
        jsonschema.validate(body, schema(), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as exc:
        found.append(f"body breaks webhook.v1.schema.json: {exc.message}")
    if body.get("id") != post.headers.get("webhook-id"):
        found.append("body id differs from webhook-id")
    return found


def _slack(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    found = []
    if not isinstance(body.get("text"), str) or not isinstance(body.get("blocks"), list):
        return ["text and blocks required"]
    if len(body["blocks"]) > 50:
        found.append("more than 50 blocks")
    for block in body["blocks"]:
        if block.get("type") == "header":
            text = block["text"]
            if text.get("type") != "plain_text" or len(text["text"]) > 150:
                found.append("header: plain_text of at most 150 characters")
        elif block.get("type") == "section":
            fields = block.get("fields", [])
            if not 1 <= len(fields) <= 10 or any(len(f["text"]) > 2000 for f in fields):
                found.append("section: 1-10 fields of at most 2000 characters")
        else:
            found.append(f"unexpected block {block.get('type')!r}")
    return found


def _mattermost(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    text = body.get("text")
    return [] if isinstance(text, str) and 0 < len(text) <= 16383 else ["text: 1-16383 characters"]


def _teams(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    if f"sig={TEAMS_SIG}" not in post.query:
        return ["the workflow's sig= is missing"]
    try:
        [attachment] = body["attachments"]
        card = attachment["content"]
    except (KeyError, ValueError, TypeError):
        return ["a message with one attachment is required"]
    found = []
    if body.get("type") != "message":
        found.append("type must be message")
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        found.append("the attachment is no Adaptive Card")
    if card.get("type") != "AdaptiveCard" or not card.get("body"):
        found.append("the card has no body")
    if any(item.get("type") != "TextBlock" for item in card.get("body", [])):
        found.append("only TextBlocks expected")
    return found


def _telegram(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    found = []
    if body.get("parse_mode") != "HTML" or not isinstance(body.get("chat_id"), int | str):
        found.append("chat_id and parse_mode HTML required")
    if not 0 < len(body.get("text", "")) <= 4096:
        found.append("text: 1-4096 characters")
    return found


def _ntfy(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    found = []
    if post.headers.get("authorization") != f"Bearer {NTFY_TOKEN}":
        found.append("no Bearer token")
    if body.get("topic") != "lw-alerts" or body.get("priority") not in (1, 2, 3, 4, 5):
        found.append("topic and a priority of 1-5 required")
    if len(body.get("message", "").encode()) > 4096 or not body.get("sequence_id"):
        found.append("message over 4096 bytes, or no sequence_id")
    return found


def _discord(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    found = []
    if post.query != "wait=true":
        found.append("wait=true expected")
    if body.get("allowed_mentions") != {"parse": []}:
        found.append("allowed_mentions must parse nothing")
    if not 0 < len(body.get("content", "")) <= 2000:
        found.append("content: 1-2000 characters")
    return found


def _apprise(server: ReceiverServer, post: Post, body: Any) -> list[str]:
    found = [] if post.headers.get("x-token") == APPRISE_TOKEN else ["no X-Token"]
    if not isinstance(body.get("title"), str) or not isinstance(body.get("message"), str):
        found.append("title and message required")
    return found


_CHECKS = {
    "webhook": _webhook,
    "slack": _slack,
    "mattermost": _mattermost,
    "teams": _teams,
    "telegram": _telegram,
    "ntfy": _ntfy,
    "discord": _discord,
    "apprise": _apprise,
}


def receivers_config(
    path: Path,
    amqp_url: str,
    smtp_port: int,
    servers: dict[str, ReceiverServer],
    *,
    to: list[str] | None = None,
    retry_delays: str = "1, 2",
    extra: str = "",
) -> Path:
    """A worker's config (tests/support/worker_helpers.central_sections) whose one route
    sends to ``MAIL`` and every receiver of ``servers`` (name -> server), or to ``to``."""
    from tests.support.worker_helpers import central_sections

    recipients = to if to is not None else [MAIL, *(f"receiver:{name}" for name in servers)]
    sections = "".join(server.section(name) for name, server in servers.items())
    listed = ", ".join(f'"{r}"' for r in recipients)
    path.write_text(
        central_sections(amqp_url, smtp_port, path.parent, retry_delays)
        + sections
        + f"\n[policy]\nflood_max = 1000\n{extra}\n[[route]]\nto = [{listed}]\n",
        encoding="utf-8",
    )
    return path


MAIL: Final = "ops@test.example"
