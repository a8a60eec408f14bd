"""What every chat channel's formatter shares: the literal constructs that keep remote-chosen
text inert, fitting a notice into a channel's length limit, and the delivery id.

A notice's values (``Notice.headline``, ``Notice.fields``) come made visible
(``display.visible``): no control, bidi or invisible character, no line break. What is left
is Markup each channel would read: ``*bold*``, ``_x_``, ``<!channel>``, ``@here``, a bare
domain the client turns into a link. So each channel puts every value inside a construct
whose content its client shows as it is: a Markdown code span (``code_span``), Telegram's
``<code>``, a Slack ``plain_text`` element, a TextBlock with its Markdown escaped
(``escape_markdown``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Final

from consumer.core.notice import Field, shorten

# Nothing can end a code span early: a backtick in a value is shown as this look-alike.
BACKTICK: Final = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT
# Every ASCII character CommonMark may read as markup, escaped with a backslash.
_MARKDOWN: Final = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def code_span(value: str) -> str:
    """``value`` as a Markdown code span (Discord, Mattermost, Slack's mrkdwn)."""
    inner = value.replace("`", BACKTICK)
    return f"`{inner}`" if inner.strip() else "`-`"


def escape_markdown(value: str) -> str:
    """``value`` with every character Markdown could read as markup backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", value)


def delivery_id(key: str) -> str:
    """A short id derived from the delivery key: the same on every retry and redelivery
    (a webhook's ``webhook-id``, ntfy's ``sequence_id``), revealing nothing of the key."""
    return "lw_" + hashlib.sha256(key.encode()).hexdigest()[:40]


def fit(
    fields: Sequence[Field],
    limit: int,
    render: Callable[[Sequence[Field]], str],
    *,
    size: Callable[[str], int] = len,
    floor: int = 48,
) -> str:
    """``render(fields)``, with the longest values cut (halving, down to ``floor``
    characters) until it is at most ``limit`` long as ``size`` counts."""
    cap = max((len(f.value) for f in fields), default=0)
    while True:
        text = render([Field(f.label, shorten(f.value, cap)) for f in fields])
        if size(text) <= limit or cap <= floor:
            return text
        cap = max(floor, cap // 2)


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))
