"""Property tests: any bytes, any strings, any sizes → no crash, no extra header, inert text.

Three boundaries where attacker text enters (issue 6, "hostile input"):

- the decoder: any bytes become a ``LoginEvent`` or a ``DecodeError``, never anything else;
- the hook's environment parsing (capture record → ``build_event``): any PAM/SSH values
  become an event that encodes, stays within its bounds, and keeps non-UTF-8 bytes losslessly;
- the worker's enrich → policy → render path on arbitrary events: every field hostile at once
  (``tests/unit/test_display.py`` covers user/host/rdns headers,
  ``tests/integration/alerts/test_render.py`` fixed values); here the full event, both recipients,
  the HTML's tag structure;
- RFC 2047 encoded words (any charset, b/q, either case, a language tag, hostile payloads)
  split anywhere across the user name and the remote host: shown, never decoded.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consumer.channels import mail_headers
from consumer.core.decisions import Action, PolicyState
from consumer.core.display import visible
from consumer.stages.enrich import Enricher
from consumer.stages.notice import BODY, SUBJECT
from consumer.stages.policy import Policy
from consumer.stages.render import Renderer
from consumer.store import Store, open_store
from producer import capture
from producer.build import build_event
from schemas import event as ev
from schemas.config import parse_config
from schemas.errors import DecodeError
from schemas.event import LoginEvent, Outcome, PamType, encode, unescape
from schemas.wire import decode_event as decode
from tests.support.factories import T0, event

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fragments that have broken mail, template and HTML code elsewhere; mixed into random text.
NASTY = (
    "\r\n", "\n.\r\n", "\r\n.\r\n", ".", "\x00", "\u202e", "\u2066", "\u200b", "{{ 7*7 }}",
    "{% raw %}", "{#", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "&amp;",
    "Bcc: x@evil.example", "\r\n\tfolded", "=?utf-8?q?=41?=", "\\x", "\\", "аdmin", "'\"",
)  # fmt: skip


def hostile_text(max_size: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.text(max_size=12), st.sampled_from(NASTY))
    return st.lists(piece, max_size=8).map("".join).map(lambda s: s[:max_size])


# --- (a) the decoder -------------------------------------------------------------------


def _msgpack_values() -> st.SearchStrategy[object]:
    scalar = st.one_of(
        st.none(), st.booleans(), st.integers(-(1 << 63), (1 << 64) - 1), st.floats(),
        st.text(max_size=40), st.binary(max_size=40),
    )  # fmt: skip
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=24), max_leaves=40)


def _near_valid() -> st.SearchStrategy[bytes]:
    """A valid event's array with items replaced: reaches the field validators."""
    items = list(msgspec.msgpack.decode(encode(event())))
    return st.lists(_msgpack_values(), max_size=len(items) + 2).map(
        lambda repl: msgspec.msgpack.encode([*repl, *items[len(repl) :]])
    )


@FAST
@given(st.one_of(st.binary(max_size=600), _near_valid()))
def test_any_bytes_decode_to_an_event_or_a_decode_error(data: bytes) -> None:
    try:
        got = decode(data)
    except DecodeError as exc:
        assert exc.reason  # the dead queue's header says why
        return
    assert isinstance(got, LoginEvent)
    assert decode(encode(got)) == got


# --- (b) the hook's environment parsing -------------------------------------------------

_env_value = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")),  # env values hold no NUL
    hostile_text(300).map(lambda s: s.replace("\0", "").encode()),
    st.integers(0, 1 << 20).map(lambda n: b"\xff" * n),  # up to 1 MiB
)
_pam_env = st.fixed_dictionaries({}, optional={key: _env_value for key in capture.CAPTURED})

_FIELD_OF = {"PAM_USER": "user", "PAM_RUSER": "ruser", "PAM_SERVICE": "service", "PAM_TTY": "tty"}


@FAST
@given(environ=_pam_env, outcome=st.sampled_from(["success", "failure", "unknown", "x"]))
def test_any_pam_environment_builds_an_event_within_bounds(
    environ: dict[bytes, bytes], outcome: str
) -> None:
    name, record = capture.record(environ, outcome, 1_780_000_000_000_000_000)
    assert name.endswith(capture.SUFFIX)
    assert len(record) <= capture.RECORD_LIMIT
    built = build_event(capture.parse(record), None)
    assert decode(encode(built)) == built  # within every bound the decoder enforces
    for key, field in _FIELD_OF.items():
        raw = environ.get(key.encode(), b"")
        text = getattr(built, field)
        if field in built.truncated:
            continue  # cut to its bound: only the prefix survives (see the test below)
        assert (unescape(text) if field in built.escaped else text.encode()) == raw


@settings(FAST, report_multiple_bugs=False)
@example(raw=b"ab" + b"\xff" * 80)  # cut after "\\x": unescape raises ValueError
@example(raw=b"a" + b"\xff" * 80)  # cut after "\\xf": the last byte comes back wrong
@given(raw=st.binary(min_size=1, max_size=400))
def test_an_escaped_cut_field_unescapes_to_a_prefix_of_its_bytes(raw: bytes) -> None:
    """A cut may land inside a ``\\xNN`` escape: what remains is still a prefix, no crash."""
    raw = raw.replace(b"\0", b"")
    _, record = capture.record({b"PAM_USER": raw}, "success", 1)
    built = build_event(capture.parse(record), None)
    if "user" in built.escaped:
        assert raw.startswith(unescape(built.user))


# --- (c) enrich → policy → render on arbitrary events ------------------------------------

_ascii_name = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=20)
_events = st.builds(
    LoginEvent,
    id=st.binary(min_size=16, max_size=16),
    time=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    host=hostile_text(ev.MAX_HOST),
    service=hostile_text(ev.MAX_SHORT),
    pam_type=st.sampled_from(PamType),
    outcome=st.sampled_from(Outcome),
    user=hostile_text(ev.MAX_NAME),
    ruser=hostile_text(ev.MAX_NAME),
    rhost=hostile_text(ev.MAX_HOST),
    tty=hostile_text(ev.MAX_SHORT),
    client_ip=st.one_of(hostile_text(ev.MAX_ADDR), st.ip_addresses().map(str)),
    client_port=st.integers(0, 65535),
    server_ip=st.one_of(hostile_text(ev.MAX_ADDR), st.ip_addresses().map(str)),
    server_port=st.integers(0, 65535),
    auth_method=hostile_text(ev.MAX_SHORT),
    key_type=hostile_text(ev.MAX_SHORT),
    key_sha256=st.binary(max_size=32),
    hook_version=hostile_text(ev.MAX_SHORT),
    dropped=st.integers(0, 1 << 40),
    escaped=st.lists(_ascii_name, max_size=3).map(tuple),
    truncated=st.lists(_ascii_name, max_size=3).map(tuple),
)
RECIPIENTS = ("ops@example.org", "sec@example.net")
CONFIG = parse_config(
    '[smtp]\nfrom = "loginwatch@example.org"\n[enrich]\ndns = false\n'
    "[policy]\nflood_max = 1000000\n"
    f'[[route]]\nto = ["{RECIPIENTS[0]}"]\nmode = "immediate"\n'
    f'[[route]]\nto = ["{RECIPIENTS[1]}"]\nmode = "immediate"\n'
)
HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "X-Loginwatch-Event", "X-Loginwatch-Action", "MIME-Version", "Content-Type",
}  # fmt: skip
HEADER_ORDER = [
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "X-Loginwatch-Event", "X-Loginwatch-Action", "MIME-Version", "Content-Type",
]  # fmt: skip


class _Tags(HTMLParser):
    """Every (tag, attribute names) pair of a document: what escaping failures would add to."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.seen: set[tuple[str, tuple[str, ...]]] = set()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add((tag, tuple(sorted(name for name, _ in attrs))))


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="lw-prop-") as tmp:
        opened = open_store(str(Path(tmp) / "store.db"))
        try:
            yield opened
        finally:
            opened.close()


def _mails(store: Store, login: LoginEvent) -> list[EmailMessage]:
    now = T0 + timedelta(seconds=1)
    enriched = Enricher(CONFIG.enrich, store)(login, now)
    decisions = Policy(CONFIG).decide(enriched, PolicyState(), now)
    assert [d.action for d in decisions] == [Action.IMMEDIATE] * 2
    assert {d.recipient for d in decisions} == set(RECIPIENTS)
    renderer = Renderer(CONFIG)
    mails = []
    for decision in decisions:
        wire = renderer.render(enriched, decision, now=now).as_bytes()
        parsed = email.message_from_bytes(wire, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mails.append(parsed)
    return mails


@pytest.fixture(scope="module")
def allowed(store: Store) -> set[tuple[str, tuple[str, ...]]]:
    """The HTML structure our own templates produce for ordinary events, with every row shown."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for login in (event(), event(rhost="laptop", outcome=Outcome.FAILURE), event(client_ip="")):
        for mail in _mails(store, login):
            html = mail.get_body(("html",))
            assert html is not None
            seen |= _Tags(str(html.get_content())).seen
    return seen


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(login=_events)
def test_any_event_renders_inert_mail_with_exactly_our_headers(
    store: Store, allowed: set[tuple[str, tuple[str, ...]]], login: LoginEvent
) -> None:
    for mail, recipient in zip(_mails(store, login), RECIPIENTS, strict=True):
        assert set(mail.keys()) == HEADERS and len(mail.keys()) == len(HEADERS)
        assert mail["To"] == recipient
        assert mail["X-Loginwatch-Event"] == login.id_hex
        subject = str(mail["Subject"])
        assert subject.strip().isprintable()
        text_part, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
        assert text_part is not None and html_part is not None
        text, html = str(text_part.get_content()), str(html_part.get_content())
        # Shown verbatim (made visible), so `{{ 7*7 }}` stays text: never evaluated.
        assert f"Who        {visible(login.user, BODY) or '(none)'}\n" in text
        assert _Tags(html).seen <= allowed  # no tag or attribute from event text
        for bad in ("\x00", "\u202e", "\u2066"):
            assert bad not in text and bad not in html and bad not in subject


# --- (d) RFC 2047 encoded words in any header-bound field ---------------------------------

_CHARSETS = ("utf-8", "UTF-8", "iso-8859-1", "utf-16", "us-ascii", "x-unknown", "utf-8*en")
_PAYLOAD = st.lists(
    st.one_of(
        st.sampled_from(("\r\n", "\r\n\r\n", "\n", "\r", "Bcc: v@evil.example", "X-A: 1", ".")),
        st.text(max_size=6),
    ),
    max_size=6,
).map("".join)


def _encoded_word(charset: str, encoding: str, payload: str) -> str:
    codec = charset.split("*", maxsplit=1)[0]
    data = payload.encode(codec if codec != "x-unknown" else "utf-8", "replace")
    if encoding in "bB":
        text = base64.b64encode(data).decode()
    else:  # q: =XX for anything but plain letters and digits, as a hostile sender would
        text = "".join(chr(b) if chr(b).isalnum() and b < 128 else f"={b:02X}" for b in data)
    return f"=?{charset}?{encoding}?{text}?="


_words = st.builds(_encoded_word, st.sampled_from(_CHARSETS), st.sampled_from("bBqQ"), _PAYLOAD)
# One or two encoded words with hostile text around them, cut anywhere into user + rhost:
# a word may open in one field and close in the next.
_split_words = st.tuples(
    st.lists(st.one_of(_words, hostile_text(8)), min_size=1, max_size=4).map("".join),
    st.integers(0, 200),
).map(lambda pair: (pair[0][: pair[1]], pair[0][pair[1] :]))
OWN_WORD = re.compile(rb"=\?utf-8\?[bq]\?[^?\s]*\?=")


@FAST
@example(parts=("=?utf-8?q?=0D=0ABcc:_v@e.net?=", ""))
@example(parts=("=?utf-8?b?DQpCY2M6IHZ", "AZS5uZXQ=?="))
@given(parts=_split_words)
def test_encoded_words_in_event_text_are_shown_and_never_decoded(
    store: Store, parts: tuple[str, str]
) -> None:
    user, rhost = parts
    login = event(user=user[: ev.MAX_NAME], rhost=rhost[: ev.MAX_HOST], client_ip="")
    now = T0 + timedelta(seconds=1)
    enriched = Enricher(CONFIG.enrich, store)(login, now)
    for decision in Policy(CONFIG).decide(enriched, PolicyState(), now):
        wire = mail_headers.wire(Renderer(CONFIG).render(enriched, decision, now=now))
        head = wire.partition(b"\r\n\r\n")[0]
        assert b"=?" not in OWN_WORD.sub(b"", head)  # no encoded word but email's own
        mail = email.message_from_bytes(wire, policy=email.policy.default)
        assert list(mail.keys()) == HEADER_ORDER
        subject = str(mail["Subject"])
        assert "=?" not in subject and "\r" not in subject and "\n" not in subject
        # The user name shows literally, its "=?" as "=？".
        assert mail_headers.inert(visible(login.user, SUBJECT)) in subject


_header_piece = st.one_of(
    st.text(max_size=30),
    st.sampled_from(("=?", "?=", "=", "?", "\t", "ü", "😀", "\\", '"', "(", "<", ",", ";", ":",
                     "=?utf-8?q?a?=", "A" * 90, "\u2028", "\x85", "=3D", "_", "\r\n")),
)  # fmt: skip


@settings(FAST, max_examples=300)
@given(text=st.lists(_header_piece, max_size=12).map("".join))
def test_any_subject_builds_a_mail_that_reads_back_as_shown(text: str) -> None:
    """The wire check refuses no honest mail: any text, made inert, survives serializing."""
    shown = mail_headers.header_text(text, 200)
    sender = Address("loginwatch", addr_spec="loginwatch@example.org")
    msg = mail_headers.compose(
        [("From", sender), ("To", Address(addr_spec="ops@example.org")), ("Subject", shown)],
        "text\n",
        "<p>html</p>\n",
    )
    read = email.message_from_bytes(mail_headers.wire(msg), policy=email.policy.default)
    assert list(read.keys()) == ["From", "To", "Subject", "MIME-Version", "Content-Type"]
    # Blanks may move where email folds its own encoded words; no other character may.
    assert str(read["Subject"]).split() == shown.split() or "".join(
        str(read["Subject"]).split()
    ) == "".join(shown.split())
    assert "=?" not in str(read["Subject"])
