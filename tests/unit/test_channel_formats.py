"""Each channel's payload, formatted in code from the channel-neutral notice (unit).

- Against fixtures written from each service's public API documentation
  (tests/unit/fixtures/channels/KIND.json): the shape the service accepts.
- The hostile corpus (tests/integration/hostile/corpus.json), each case's environment
  through the real hook's parser, through every formatter: every value a remote party chose
  sits inside the channel's literal construct (a Slack ``plain_text``, a Markdown code span,
  Telegram's ``<code>``, an escaped TextBlock), never outside it.
- The webhook's body against the shipped JSON Schema, its signature against the Standard
  Webhooks reference library, with two keys (rotation).
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import markupsafe
import msgspec
import pytest
import standardwebhooks

from consumer.channels import discord, mattermost, ntfy, slack, teams, telegram, webhook
from consumer.channels.http import Answer
from consumer.channels.text import BACKTICK, delivery_id
from consumer.core.decisions import Action, Budget, Decision
from consumer.core.detections import Brute, Escalation, Hop, Origin, Session, Spot, Travel
from consumer.core.enriched import Enriched, FirstSeen
from consumer.core.notice import Field, Notice
from consumer.stages.notice import alert_notice
from consumer.stages.render import Renderer
from producer import capture
from producer.build import build_event
from schemas.config import parse_config
from schemas.event import KINDS, LoginEvent
from tests.support.factories import T0, enriched, event
from tests.support.hookrun import PAM_ENV

FIXTURES = Path(__file__).parent / "fixtures" / "channels"
CORPUS = json.loads(
    (Path(__file__).parents[1] / "integration" / "hostile" / "corpus.json").read_text("utf-8")
)
DECISION = Decision(
    action=Action.IMMEDIATE,
    reason='route #1 (everything) matches login of user "alice" on host "web-01"',
    recipient="receiver:chat",
    route=0,
)

MAIL_CONFIG = parse_config('[smtp]\nfrom = "loginwatch@test.example"\n[enrich]\ndns = false\n')
MAIL_DECISION = msgspec.structs.replace(DECISION, recipient="ops@test.example")


def sample() -> Notice:
    login = enriched(event(), first_seen=FirstSeen(address=True), received=T0)
    return replace(alert_notice(login, DECISION, "alert:sample:receiver:chat"), made=T0)


PAYLOADS: dict[str, Any] = {
    "slack": slack.payload,
    "mattermost": mattermost.payload,
    "discord": discord.payload,
    "teams": teams.payload,
    "telegram": lambda n: telegram.payload(n, -1001234567890),
    "ntfy": lambda n: ntfy.payload(n, "lw-alerts"),
    "webhook": lambda n: json.loads(webhook.body(n)),
}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_each_payload_is_the_documented_shape(kind: str) -> None:
    expected = json.loads((FIXTURES / f"{kind}.json").read_text("utf-8"))
    assert PAYLOADS[kind](sample()) == expected["payload"], expected["source"]


# --- the hostile corpus ------------------------------------------------------------------


def hostile_event(case: dict[str, Any]) -> LoginEvent:
    """The case's PAM environment through the hook's own parser, as the host builds it."""
    env: dict[str, str | bytes] = {} if case.get("env_only") else dict(PAM_ENV)
    env.update(case.get("env", {}))
    env.update({k: bytes.fromhex(v) for k, v in case.get("env_hex", {}).items()})
    env.update({k: piece * n for k, (piece, n) in case.get("env_repeat", {}).items()})
    raw = {k.encode(): v if isinstance(v, bytes) else v.encode("utf-8", "surrogateescape")
           for k, v in env.items()}  # fmt: skip
    _, record = capture.record(raw, "success", time.time_ns())
    return build_event(capture.parse(record), "web-01")


def hostile_notice(case: dict[str, Any]) -> Notice:
    login = hostile_event(case)
    why = f"route #1 matches login of user {login.user!r} on host {login.host!r}"
    decision = msgspec.structs.replace(DECISION, reason=why)
    found = Enriched(event=login, rdns=login.user[:200], rdns_verified=False,
                     city=login.user[:64], network="192.0.2.0/24", received=T0)  # fmt: skip
    return alert_notice(found, decision, f"alert:{login.id_hex}:receiver:chat")


def blanked(notice: Notice) -> Notice:
    """The same notice with every value replaced by ``x``: what is left is ours alone."""
    return replace(notice, headline=tuple(Field(f.label, "x") for f in notice.headline),
                   fields=tuple(Field(f.label, "x") for f in notice.fields))  # fmt: skip


CODE_SPAN = re.compile(r"`[^`\n]*`")


def outside_code(markdown: str) -> str:
    return CODE_SPAN.sub("`…`", markdown)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outside: list[str] = []
        self.inside: list[str] = []
        self.tags: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.depth += tag == "code"
        self.outside.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag == "code"
        self.outside.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        (self.inside if self.depth else self.outside).append("…" if self.depth else data)


def telegram_outside(text: str) -> tuple[str, list[str]]:
    parser = _Html()
    parser.feed(text)
    return "".join(parser.outside), parser.tags


MARKUP = set("\\`*_{}[]()<>#+-.!|~")


def unescaped_markup(text: str) -> list[str]:
    """Markdown characters in ``text`` that no backslash escapes."""
    found, chars = [], iter(text)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, "")
            if escaped not in MARKUP:
                found.append("\\" + escaped)
        elif ch in MARKUP:
            found.append(ch)
    return found


def teams_values(payload: dict[str, Any]) -> list[dict[str, Any]]:
    body = payload["attachments"][0]["content"]["body"]
    return [block for block in body if block.get("fontType") == "Monospace"]


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[c["id"] for c in CORPUS["cases"]])
def test_hostile_text_stays_inside_each_channels_literal_construct(case: dict[str, Any]) -> None:
    notice = hostile_notice(case)
    text, content = inside_literals(notice)
    # And the values are shown, not dropped: the user name, made visible, in every channel.
    user = notice.fields[0].value[:20]
    assert user.replace("`", BACKTICK).replace("@", "\uff20") in text
    assert user.replace("`", BACKTICK) in content["content"]


def hostile_findings(case: dict[str, Any]) -> Enriched:
    """The case's login with every finding the detections make, each built from the case's
    hostile text where a remote party chooses it: the user, the service, the source, the
    host names in a jump chain, GeoIP's place names (a database an operator downloads)."""
    login = hostile_event(case)
    hostile = login.user[:64]
    origin = Origin(event_id="ab" * 16, user=hostile, host=login.host, service=login.service,
                    source=login.rhost, fingerprint="", at=T0,
                    linked_by="audit session 4")  # fmt: skip
    here = Spot(latitude=52.5, longitude=13.4, radius=5, at=T0, host=hostile, address=hostile,
                place=hostile)  # fmt: skip
    there = msgspec.structs.replace(here, latitude=-33.9, longitude=151.2, place=login.service)
    return Enriched(
        event=msgspec.structs.replace(login, ruser=hostile),
        received=T0,
        escalation=Escalation(target=hostile, via=login.service, origin=origin),
        brute=Brute(host=3, fleet=5, window=600),
        travel=Travel(before=here, after=there, km=16000, kmh=32000),
        hop=Hop(client=login.rhost, chain=(login.rhost, hostile, login.host), via_event="x"),
        session=Session(seconds=3720, origin=origin),
    )


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[c["id"] for c in CORPUS["cases"]])
def test_hostile_text_in_every_finding_stays_inert_in_each_channel_and_the_mail(
    case: dict[str, Any],
) -> None:
    """The escalation sentence, the jump chain, the travel places and the session line are
    built from hostile text: each is made visible once (consumer/detect/words.py), sits
    inside each channel's literal construct, and the mail shows it as text."""
    found = hostile_findings(case)
    notice = alert_notice(found, DECISION, f"alert:{found.event.id_hex}:receiver:chat")
    lines = [f.value for f in notice.fields if f.label == "Found"]
    assert len(lines) == 5  # escalation, brute force, travel, hop, session
    assert all(line.isprintable() for line in lines)
    inside_literals(notice)
    mail = Renderer(MAIL_CONFIG).render(found, MAIL_DECISION, now=T0)
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    subject = str(parsed["Subject"]).strip()  # a folded header's parse starts with a space
    assert subject.isprintable() and subject.startswith("ESCALATION: ")
    text = str(parsed.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    html = str(parsed.get_body(("html",)).get_content())  # type: ignore[union-attr]
    for line in lines:
        assert line in text
        assert str(markupsafe.escape(line)) in html  # Jinja's autoescape
    assert not re.search(r"<(script|img|svg|iframe)", html, re.IGNORECASE)  # no tag of theirs


def inside_literals(notice: Notice) -> tuple[str, dict[str, Any]]:
    """Asserts every value of ``notice`` sits inside each channel's literal construct;
    returns Mattermost's text and Discord's payload."""
    ours = blanked(notice)
    # Slack: blocks hold plain_text only (no mrkdwn, no emoji codes); the fallback's values
    # are code spans with & < > escaped (Slack reads <!channel> even in code).
    payload = slack.payload(notice)
    for block in payload["blocks"]:
        texts = [block["text"]] if "text" in block else block["fields"]
        assert all(t["type"] == "plain_text" and t["emoji"] is False for t in texts)
    assert outside_code(payload["text"]) == outside_code(slack.payload(ours)["text"])
    assert not re.search(r"[<>]|&(?!amp;|lt;|gt;)", payload["text"])
    # Mattermost and Discord: code spans; no mention can ping.
    text = mattermost.payload(notice)["text"]
    assert outside_code(text) == outside_code(mattermost.payload(ours)["text"])
    assert "@" not in text
    content = discord.payload(notice)
    assert outside_code(content["content"]) == outside_code(discord.payload(ours)["content"])
    assert content["allowed_mentions"] == {"parse": []} and len(content["content"]) <= 2000
    # Telegram: every value inside <code>, which nothing in it can close.
    html_text = telegram.payload(notice, 1)["text"]
    outside, tags = telegram_outside(html_text)
    assert outside == telegram_outside(telegram.payload(ours, 1)["text"])[0]
    assert set(tags) <= {"b", "code"}
    # Teams: every value a monospace TextBlock of its own, its Markdown escaped.
    card = teams.payload(notice)
    values = teams_values(card)
    assert len(values) == len(notice.headline) + len(notice.fields)
    assert [b for b in values if unescaped_markup(b["text"])] == []
    # ntfy: plain text, never Markdown.
    assert ntfy.payload(notice, "t")["markdown"] is False
    return text, content


def test_a_backtick_cannot_end_a_code_span() -> None:
    login = event(user="a`*bold*` <!channel> @here `")
    notice = alert_notice(enriched(login), DECISION, "k")
    text = discord.payload(notice)["content"]
    assert f"`a{BACKTICK}*bold*{BACKTICK} <!channel> @here {BACKTICK}`" in text
    assert "`a`" not in text


def test_mattermost_neutralises_every_mention() -> None:
    login = event(user="@channel", host="@all", rhost="@here")
    text = mattermost.payload(alert_notice(enriched(login), DECISION, "k"))["text"]
    assert "@" not in text and "`\uff20channel`" in text and "`\uff20all`" in text


def test_discord_fits_two_thousand_characters() -> None:
    login = event(user="u" * 256, host="h" * 253, service="s" * 64, tty="t" * 64)
    notice = alert_notice(enriched(login, rdns="r" * 253), DECISION, "k")
    content = discord.payload(notice)["content"]
    assert len(content) <= 2000
    assert f"`{login.id_hex}`" in content  # the event id survives the cut


def test_telegram_escapes_what_could_close_its_code_tag() -> None:
    login = event(user="</code><b>x</b>&amp;")
    text = telegram.payload(alert_notice(enriched(login), DECISION, "k"), 1)["text"]
    assert "<code>&lt;/code&gt;&lt;b&gt;x&lt;/b&gt;&amp;amp;</code>" in text


def test_a_burst_and_a_test_notice_say_so() -> None:
    burst = Decision(action=Action.BURST, reason="flood control: 10 login alerts",
                     recipient="receiver:chat", burst=Budget.HOST)  # fmt: skip
    notice = alert_notice(enriched(), burst, "k")
    assert (notice.type, notice.summary, notice.priority) == (
        "loginwatch.burst",
        "Flood control",
        "high",
    )
    assert "burst" in notice.tags
    test = alert_notice(enriched(), DECISION, "k", test=True)
    assert test.type == "loginwatch.test" and test.summary.startswith("[test] ")


# --- the webhook: schema and signature ----------------------------------------------------


def test_the_webhook_body_follows_the_shipped_schema() -> None:
    schema = webhook.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.FormatChecker()
    for notice in (sample(), hostile_notice(CORPUS["cases"][0])):
        jsonschema.validate(json.loads(webhook.body(notice)), schema, format_checker=checker)
    broken = json.loads(webhook.body(sample()))
    broken["data"]["event"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


KEYS = (
    "whsec_" + base64.b64encode(b"a" * 32).decode(),
    "whsec_" + base64.b64encode(b"b" * 24).decode(),
)


def test_the_signature_verifies_with_each_key_in_the_reference_library() -> None:
    body = webhook.body(sample())
    stamp = str(int(time.time()))
    msg = delivery_id("alert:sample:receiver:chat")
    headers = {"webhook-id": msg, "webhook-timestamp": stamp,
               "webhook-signature": webhook.sign(KEYS, msg, stamp, body)}  # fmt: skip
    assert headers["webhook-signature"].count("v1,") == 2
    for key in KEYS:
        assert standardwebhooks.Webhook(key).verify(body, headers) is not None
    other = "whsec_" + base64.b64encode(b"c" * 32).decode()
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(body, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(KEYS[0]).verify(body + b" ", headers)


def test_the_delivery_id_is_stable_and_reveals_nothing() -> None:
    key = "alert:4f53cda18c2baa0c0354bb5f9a3ecbe5:receiver:chat"
    assert delivery_id(key) == delivery_id(key) != delivery_id(key + "x")
    assert "receiver" not in delivery_id(key) and re.fullmatch(r"lw_[0-9a-f]{40}", delivery_id(key))


@pytest.mark.parametrize(
    ("module", "body", "seconds"),
    [
        (telegram, b'{"ok":false,"error_code":429,"parameters":{"retry_after":7}}', 7.0),
        (telegram, b'{"ok":false,"error_code":429}', None),
        (telegram, b"not json", None),
        (
            discord,
            b'{"message":"You are being rate limited.","retry_after":1.5,"global":false}',
            1.5,
        ),
        (discord, b'{"retry_after":"soon"}', None),
    ],
)
def test_the_channels_own_retry_fields(module: Any, body: bytes, seconds: float | None) -> None:
    import httpx

    assert module.retry_field(Answer(429, httpx.Headers(), body)) == seconds


def test_a_sudo_escalation_with_every_finding_follows_the_schema() -> None:
    """Every kind the wire knows is in the schema's enum, and the findings' shape holds."""
    schema = webhook.schema()
    kinds = schema["$defs"]["alert"]["properties"]["event"]["properties"]["kind"]["enum"]
    assert tuple(kinds) == KINDS
    origin = Origin(event_id="ab" * 16, user="alice", host="web-01", service="sshd",
                    source="198.51.100.7", fingerprint="", at=T0,
                    linked_by="audit session 4")  # fmt: skip
    sudo = enriched(event(service="sudo", user="root", ruser="alice"),
                    escalation=Escalation(target="root", via="sudo", origin=origin),
                    brute=Brute(host=3, fleet=5, window=600),
                    hop=Hop(client="198.51.100.7", chain=("198.51.100.7", "bastion", "web-01"),
                            via_event="x"))  # fmt: skip
    body = json.loads(webhook.body(alert_notice(sudo, DECISION, "k")))
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
    found = body["data"]["enrichment"]["findings"]
    assert [f["kind"] for f in found] == ["escalation", "brute-force", "hop"]
    assert found[0]["text"].startswith("alice, in over SSH from 198.51.100.7, became root")
