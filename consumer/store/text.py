"""How a text value is stored: the one rule every table that is joined on text follows.

PostgreSQL TEXT cannot hold NUL, so a value is stored with NUL (and so the backslash)
escaped, on SQLite too. The first-seen tables (``Store.observe``) and the digest's events
(``digest/intake.py``) are joined on the stored user name and address: both must store a
value the same way, or the digest's first-seen list silently comes out empty.
"""

from __future__ import annotations


def sql_text(value: str) -> str:
    """``value`` as stored: ``\\`` doubled and NUL written ``\\x00``; other text unchanged."""
    if "\x00" not in value and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\x00", "\\x00")
