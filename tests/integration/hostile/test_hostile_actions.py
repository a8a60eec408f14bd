"""The known-nasty corpus (corpus.json) through every page of ``loginwatch web`` and every
action message: each value becomes a login's host, user and source, a question about it,
an ack of it with that text as its comment, and a stored digest event; then the real server
(``loginwatch web serve`` on loopback) serves the confirm page, the answered page, the
ack form and the operator page, and the question and escalation are rendered as mails and
as webhook, Slack and Discord bodies. Nothing may arrive live: no tag or event handler from
the text, no raw control, bidi or zero-width character, no header line of its own."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumer.channels import discord, slack, webhook
from consumer.channels.mail_headers import wire
from consumer.core.decisions import Action, Decision
from consumer.core.links import ACK, ANSWER_NO, Signer, link
from consumer.core.notice import Notice
from consumer.questions.message import Messages
from consumer.questions.table import Question, QuestionTable
from consumer.silences.rules import ACK as ACK_KIND
from consumer.silences.rules import Rule, literal
from consumer.silences.table import SilenceTable
from consumer.store import Store, open_store
from schemas.config import load_config
from schemas.event import escape_bytes
from schemas.files import read_secret_lines
from tests.support.smtp_server import free_port
from tests.support.web_server import OPERATOR, PASSWORD, WebServer, field, web_section

CORPUS = json.loads((Path(__file__).parent / "corpus.json").read_text("utf-8"))
NOW = datetime.now(UTC).replace(microsecond=0)
NEVER = ("\x00", "\r", "\u202e", "\u2066", "\u200b", "\x1b")
# Every tag the operator page's template writes: anything else came from the text.
OPERATOR_TAGS = {"html", "head", "meta", "title", "link", "body", "header", "span", "form",
                 "input", "button", "main", "p", "section", "h2", "table", "thead", "tbody",
                 "tr", "th", "td", "code", "strong"}  # fmt: skip
LIVE_TAGS = ("script", "img", "iframe", "object", "svg", "b", "a", "form", "input", "style")


def hostile_values() -> list[tuple[str, str]]:
    """(case id, value) for every text a corpus case carries, cut to 600 characters."""
    found = []
    for case in CORPUS["cases"]:
        values = [*case.get("env", {}).values()]
        values += [escape_bytes(bytes.fromhex(h))[0] for h in case.get("env_hex", {}).values()]
        values += [piece * min(count, 600) for piece, count in case.get("env_repeat", {}).values()]
        for n, value in enumerate(v for v in values if v):
            found.append((f"{case['id']}-{n}", value[:600]))
    return found


VALUES = hostile_values()


class _Live(HTMLParser):
    """Tags and handlers a page has, to compare with what our templates put there."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def inert(html: str, baseline: str) -> None:
    """``html`` has no tag the ``baseline`` page (the same page with plain text) lacks, no
    event handler, and no raw character that could reorder, hide or end a line."""
    live, base = _Live(html), _Live(baseline)
    extra = sorted(set(live.tags) - set(base.tags))
    assert not extra and not live.handlers, (extra, live.handlers)
    assert sorted(t for t in live.tags if t in LIVE_TAGS) == sorted(
        t for t in base.tags if t in LIVE_TAGS
    )
    for bad in NEVER:
        assert bad not in html, repr(bad)


def question_for(value: str, n: int) -> Question:
    return Question(id=f"{n:032x}", host=value, user=value, client_ip=value[:200],
                    client_port=n, fingerprint="", login_at=NOW, asked="user@corp.test",
                    asked_at=NOW, expires_at=NOW + timedelta(days=1))  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, Path, Store]]:
    tmp = tmp_path_factory.mktemp("hostile-web")
    port = free_port()
    config = tmp / "loginwatch.toml"
    config.write_text(f'[store]\nurl = "{tmp / "store.db"}"\n[smtp]\nport = {free_port()}\n'
                      + web_section(tmp, port) + '\n[[route]]\nto = ["sec@test.example"]\n'
                      'escalate = true\n', encoding="utf-8")  # fmt: skip
    with (
        open_store(str(tmp / "store.db")) as store,
        WebServer(config, port, tmp / "web.log") as web,
    ):
        yield web, config, store


def signed_in(web: WebServer) -> dict[str, str]:
    page = httpx.get(f"{web.url}/login", timeout=10)
    done = httpx.post(f"{web.url}/login", timeout=10, data={
        "nonce": field(page.text, "nonce"), "name": OPERATOR, "password": PASSWORD,
        "next": "/"})  # fmt: skip
    cookie = done.headers["set-cookie"].split(";", 1)[0]
    return {"cookie": cookie}


def test_every_page_keeps_every_corpus_value_inert(
    served: tuple[WebServer, Path, Store],
) -> None:
    web, config, store = served
    signer = Signer(read_secret_lines(str(config.parent / "web-keys"), "keys"))
    questions, silences = QuestionTable(store.db), SilenceTable(store.db)
    plain = questions.ask(question_for("plain-host", 0))

    def pages(q: Question) -> tuple[str, str, str]:
        until = NOW + timedelta(days=1)
        no = link(web.url, ANSWER_NO, signer.sign(ANSWER_NO, {"question": q.id}, q.asked, until))
        ack = link(web.url, ACK, signer.sign(ACK, {"host": q.host, "user": q.user,
                                                   "source": q.client_ip, "event": q.id},
                                             "ops@test.example", until))  # fmt: skip
        confirm = httpx.get(no, timeout=10)
        assert confirm.status_code == 200, confirm.text[:500]
        answered = httpx.post(no, data={"nonce": field(confirm.text, "nonce")}, timeout=10)
        assert answered.status_code == 200
        act = httpx.get(ack, headers=cookie, timeout=10)
        assert act.status_code == 200, act.text[:300]
        return confirm.text, answered.text, act.text

    cookie = signed_in(web)
    baseline = pages(plain)
    for n, (case, value) in enumerate(VALUES, start=1):
        q = questions.ask(question_for(value, n))
        silences.add(Rule(id="", kind=ACK_KIND, hosts=(literal(value),), users=(literal(value),),
                          starts=NOW, ends=NOW + timedelta(hours=1), comment=value[:500],
                          created_by=OPERATOR, created_at=NOW))  # fmt: skip
        store.db.execute(
            "INSERT INTO digest_event (event_id, at, host, username, kind, client_ip, rhost,"
            " auth_method, dropped, audience, arrived_at, host_at, fingerprint)"
            " VALUES (?, ?, ?, ?, 'login', ?, '', '', 0, '', ?, ?, '')",
            (q.id, int(NOW.timestamp()), value.replace("\x00", ""), value.replace("\x00", ""),
             value[:200].replace("\x00", ""), int(NOW.timestamp()), int(NOW.timestamp())),
        )  # fmt: skip
        for page, base in zip(pages(q), baseline, strict=True):
            inert(page, base)
        assert case
    operator = httpx.get(f"{web.url}/", headers=cookie, timeout=10)
    assert operator.status_code == 200 and len(VALUES) > 50
    assert operator.text.count("<tr>") >= len(VALUES)
    live = _Live(operator.text)
    assert set(live.tags) <= OPERATOR_TAGS and not live.handlers, set(live.tags) - OPERATOR_TAGS
    assert live.tags.count("form") == 1 + len(VALUES)  # sign out, and one expire per ack
    for bad in NEVER:
        assert bad not in operator.text
    assert "<script>" not in operator.text and "&lt;script&gt;" in operator.text


@pytest.mark.parametrize(("case", "value"), VALUES[::3], ids=[c for c, _ in VALUES[::3]])
def test_every_action_message_keeps_a_corpus_value_inert(
    served: tuple[WebServer, Path, Store], case: str, value: str
) -> None:
    _, config, _ = served
    messages = Messages(load_config(config))
    q = dataclasses.replace(question_for(value, 7), verdict="no", flag="likely-scanner")
    answers = [("no", NOW, value[:64], value[:300])]
    decision = Decision(action=Action.IMMEDIATE, recipient="sec@test.example", reason=value)
    for notice in (messages.question(q, "https://lw.test/a/answer-yes/T",
                                     "https://lw.test/a/answer-no/T", "question:k"),
                   messages.escalation(q, decision, answers, "system:k")):  # fmt: skip
        check_notice(notice)


def check_notice(notice: Notice) -> None:
    assert notice.mail is not None
    raw = wire(notice.mail)  # raises PermanentSendError if a header line was made
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii", "replace")
    names = [line.split(":", 1)[0] for line in head.split("\r\n") if not line[:1].isspace()]
    mark = (
        "X-Loginwatch-Question" if notice.type == "loginwatch.question" else "X-Loginwatch-System"
    )
    assert names == ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", mark,
                     "MIME-Version", "Content-Type"], head  # fmt: skip
    html = notice.mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = notice.mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    live = _Live(html)
    assert "script" not in live.tags and not live.handlers
    assert set(live.tags) <= {"html", "head", "meta", "title", "body", "table", "tr", "td",
                              "span", "a", "div", "strong", "ol", "li", "code", "br"}  # fmt: skip
    for bad in NEVER:
        assert bad not in text and bad not in html
    chat = discord.payload(notice)
    assert chat["allowed_mentions"] == {"parse": []}
    body: Any = json.loads(webhook.body(notice))
    assert body["type"] in ("loginwatch.question", "loginwatch.escalation")
    # The webhook's data carries the host's words as JSON strings (its schema says: hostile);
    # every line meant for people is made visible.
    for formatted in (body["title"], json.dumps(slack.payload(notice), ensure_ascii=False),
                      json.dumps(chat, ensure_ascii=False)):  # fmt: skip
        for bad in NEVER:
            assert bad not in formatted
