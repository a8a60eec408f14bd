"""Make hostile event text visible and inert for people: logs, subjects, mail bodies.

Control characters become Unicode control pictures (CR → ␍, LF → ␊, NUL → ␀), everything
else that does not print — bidi overrides, zero-width and format characters, line separators,
unusual spaces — becomes a visible ``\\u202e`` escape. The result has no character that can
end a header line, reorder the text around it or hide itself. HTML escaping is still the
template engine's job (autoescape); this only deals with what HTML escaping does not.
"""

from __future__ import annotations

from typing import Final

_PICTURES: Final = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}


def visible(text: str, limit: int | None = None) -> str:
    """``text`` with every non-printing character shown visibly; cut to ``limit`` characters."""
    cut = ""
    if limit is not None and len(text) > limit:
        cut = f"… ({len(text) - limit} more characters)"
        text = text[:limit]
    if text.isprintable():
        return text + cut
    return "".join(_show(ch) for ch in text) + cut


def _show(ch: str) -> str:
    if ch.isprintable() or ch == " ":
        return ch
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
