"""display.visible: hostile text becomes printable, visible and one line."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.channels.mail_headers import header_text, inert
from consumer.core.decisions import Action, Decision
from consumer.core.display import quoted, visible
from consumer.stages.render import Renderer
from schemas.config import parse_config
from tests.support.factories import enriched, event


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("alice", "alice"),
        ("jürgen 山田", "jürgen 山田"),
        ("a\r\nb", "a␍␊b"),
        ("nul\x00 tab\t del\x7f", "nul␀ tab␉ del␡"),
        ("\u202eexe.txt", "\\u202eexe.txt"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("line\u2028sep\x85", "line\\u2028sep\\x85"),
        ("nbsp\xa0", "nbsp\\xa0"),
        ("tag\U000e0041", "tag\\U000e0041"),
    ],
)
def test_visible(text: str, shown: str) -> None:
    assert visible(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("root\u3164", "root\\u3164"),  # HANGUL FILLER: "root" and a blank that is a letter
        ("\u115fadmin\u1160\uffa0", "\\u115fadmin\\u1160\\uffa0"),
        ("ro\u034fot", "ro\\u034fot"),  # COMBINING GRAPHEME JOINER
        ("vs\ufe0f\U000e0100", "vs\\ufe0f\\U000e0100"),  # variation selectors
        ("x\u2800y", "x\\u2800y"),  # BRAILLE PATTERN BLANK
        ("\u17b4\u180b", "\\u17b4\\u180b"),
        ("z" + "\u0336" * 6, "z" + "\u0336" * 4 + "\\u0336" * 2),  # a pile draws over lines
        ("Nguy\u1ec5n \u0928\u092e\u0938\u094d\u0924\u0947 e\u0301\u0302", None),
    ],
)
def test_what_prints_as_nothing_is_shown(text: str, shown: str | None) -> None:
    """Printable to Python, invisible to a person: "root\u3164" must not read as root."""
    assert visible(text) == (text if shown is None else shown)
    assert header_text(text, 80) == (text if shown is None else shown)


# Printable to Python, drawn as nothing (Default_Ignorable_Code_Point outside Cf, Braille blank).
BLANKS = "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\ufe00\ufe0f\uffa0"


@given(st.text(alphabet=st.sampled_from(BLANKS + "a\u0301\u20dd\u0489é"), max_size=40) | st.text())
def test_visible_output_hides_nothing(text: str) -> None:
    shown = visible(text)
    assert not any(ch in BLANKS or 0xE0000 <= ord(ch) <= 0xE0FFF for ch in shown)
    marks = 0
    for ch in shown:
        marks = marks + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        assert marks <= 4, f"{marks} combining marks in a row in {shown!r}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("=?utf-8?b?QmNj?=", "=？utf-8?b?QmNj?="),
        ("=?utf-8?b?QmNjOg==?=", "=？utf-8?b?QmNjOg==？="),
        ("=?UTF-8?Q?a?= =?iso-8859-1*en?q?b?=", "=？UTF-8?Q?a?= =？iso-8859-1*en?q?b?="),
        ("==??=?=", "==？?=？="),
        ("a\r\n=?x?q?y?=\u2028b\x85c\x0bd\x0ce", "a =？x?q?y?= b c d e"),
        ("\t lead and  trail \n", "lead and trail"),
        ("bidi\u202e=\u200b?", "bidi\\u202e=\\u200b?"),
    ],
)
def test_header_text_is_one_inert_line(text: str, shown: str) -> None:
    assert inert(text) == shown
    assert "=?" not in inert(text) and inert(text).isprintable()


def test_a_cut_header_makes_no_encoded_word() -> None:
    assert header_text("x" * 10 + "=?", 11) == "x" * 10 + "…"
    assert header_text("=?" * 50, 20) == "=？" * 9 + "=…"


@given(st.text(max_size=200))
def test_inert_header_text_never_starts_an_encoded_word(text: str) -> None:
    shown = header_text(text, 80)
    assert "=?" not in shown and shown.isprintable() and len(shown) <= 80


def test_limits_and_quotes() -> None:
    assert visible("x" * 10, 4) == "xxxx… (6 more characters)"
    assert quoted("evil\n", 3) == '"evi… (2 more characters)"'


@given(st.text(max_size=200))
def test_visible_output_always_prints(text: str) -> None:
    assert visible(text).isprintable()


RENDERER = Renderer(parse_config('[smtp]\nfrom = "lw@example.org"'))
DECISION = Decision(action=Action.IMMEDIATE, reason="r", recipient="ops@example.org")


@settings(max_examples=80, deadline=None)
@given(user=st.text(max_size=300), host=st.text(max_size=100), rdns=st.text(max_size=60))
def test_no_event_text_changes_the_headers(user: str, host: str, rdns: str) -> None:
    msg = RENDERER.render(enriched(event(user=user, host=host), rdns=rdns or None), DECISION)
    assert [k for k in msg if k not in ("MIME-Version", "Content-Type")] == [
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
        "X-Loginwatch-Event", "X-Loginwatch-Action",
    ]  # fmt: skip
    assert msg["To"] == "ops@example.org"
    # Spaces collapse, "=?" inert; a user whose escapes run past SUBJECT_MAX (200) is cut
    # with the rest of the subject ("…").
    shown, subject = inert(visible(user, 40)), str(msg["Subject"])
    assert shown in subject or (subject.endswith("…") and shown.startswith(subject[6:-1]))
    assert str(msg["Subject"]).isprintable()
    wire = msg.as_bytes()  # serialises (SMTP sends exactly this) without raising
    assert b"\x00" not in wire
