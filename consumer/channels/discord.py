"""Discord webhooks: ``content`` with every value a code span, mentions parsed from nothing.

``allowed_mentions: {"parse": []}`` lets no ``@everyone``, ``@here``, user or role in the
text ping anyone; code spans keep Markdown, masked links and spoilers literal;
``flags: 4`` (SUPPRESS_EMBEDS) keeps a link from unfurling. Content is at most 2,000
characters: the longest values are cut to fit. ``?wait=true`` makes Discord answer once the
message is stored (200 with the message), not when it is queued (204).

A 429 carries ``Retry-After`` and the JSON ``retry_after`` (seconds); 401, 403 and 404 (a
deleted webhook) are permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import msgspec

from consumer.channels.http import Answer, JsonChannel, Poster, field_seconds
from consumer.channels.text import code_span, fit
from consumer.core.notice import Field, Notice
from schemas.receivers import Resolved

LIMIT: Final = 2000
SUPPRESS_EMBEDS: Final = 1 << 2


def payload(notice: Notice) -> dict[str, Any]:
    """The webhook's JSON body for ``notice``."""
    headline = " ".join(f"{f.label} {code_span(f.value)}" for f in notice.headline)

    def render(fields: Sequence[Field]) -> str:
        lines = [f"**{notice.summary}** {headline}".strip()]
        lines += [f"**{f.label}:** {code_span(f.value)}" for f in fields]
        return "\n".join(lines)

    return {
        "content": fit(notice.fields, LIMIT, render, floor=24),
        "allowed_mentions": {"parse": []},
        "flags": SUPPRESS_EMBEDS,
    }


def retry_field(answer: Answer) -> float | None:
    """Discord's 429 body: ``{"retry_after": 1.5, "global": false, …}``."""
    try:
        found = msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        return None
    return field_seconds(found.get("retry_after")) if isinstance(found, dict) else None


def waiting(url: str) -> str:
    """The webhook URL with ``wait=true``: answered once stored."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, "wait=true") if q)
    return urlunsplit(parts._replace(query=query))


def channel(resolved: Resolved, poster: Poster) -> JsonChannel:
    return JsonChannel(poster, waiting(resolved.url), payload, retry_field=retry_field)
