"""Make hostile event text visible and inert for people: logs, subjects, mail bodies.

Control characters become Unicode control pictures (CR → ␍, LF → ␊, NUL → ␀), everything
else that does not print — bidi overrides, zero-width and format characters, line separators,
unusual spaces — becomes a visible ``\\u202e`` escape. So does what Python counts as
printable but draws nothing: the Unicode default-ignorable characters outside ``Cf``
(variation selectors, the combining grapheme joiner, Hangul fillers: ``"root\\u3164"`` would
read as ``root``), the blank Braille pattern, and a combining mark past the ``MAX_MARKS``-th
in a row (a pile of them draws over the lines around it). The result has no character that
can end a header line, reorder the text around it or hide itself. HTML escaping is still the
template engine's job (autoescape); this only deals with what HTML escaping does not.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, TextIO

_PICTURES: Final = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}
# Printable by str.isprintable, invisible on screen: Default_Ignorable_Code_Point (Unicode
# DerivedCoreProperties) less its Cf/Cn members, which isprintable already refuses, plus
# U+2800 BRAILLE PATTERN BLANK (a letter-width blank that no whitespace rule collapses).
_BLANK: Final = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0000-\U000e0fff]"
)
# Combining marks on one letter: Vietnamese and Indic text need two or three; Zalgo text
# stacks dozens, drawn over the neighbouring lines of a mail or a terminal.
MAX_MARKS: Final = 4


def visible(text: str, limit: int | None = None) -> str:
    """``text`` with every non-printing character shown visibly; cut to ``limit`` characters."""
    cut = ""
    if limit is not None and len(text) > limit:
        cut = f"… ({len(text) - limit} more characters)"
        text = text[:limit]
    if text.isascii() and text.isprintable():
        return text + cut  # the common case, and none of the rules below apply to it
    out = []
    marks = 0
    for ch in text:
        marks = marks + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        out.append(_escape(ch) if marks > MAX_MARKS else _show(ch))
    return "".join(out) + cut


def _show(ch: str) -> str:
    if (ch.isprintable() and not _BLANK.match(ch)) or ch == " ":
        return ch
    return _escape(ch)


def _escape(ch: str) -> str:
    code = ord(ch)
    picture = _PICTURES.get(code)
    if picture is not None:
        return picture
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quoted(text: str, limit: int = 64) -> str:
    """``"text"`` made visible and cut short, for one-line reasons and log lines."""
    return f'"{visible(text, limit)}"'


def inert_text(text: str) -> str:
    """Lines for a terminal: each made ``visible``, its line breaks and tabs kept."""
    return "\n".join(
        "\t".join(visible(cell) for cell in line.split("\t")) for line in text.split("\n")
    )


class InertStream:
    """A text stream that writes everything ``inert_text`` (``consumer/cli.py`` puts one over
    stdout and stderr): no table, note or error line of any command can carry an escape
    sequence, a bidi override or an invisible character to the operator's terminal,
    whichever field of a broker, config or event it shows."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(inert_text(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)  # encoding, isatty, fileno…
