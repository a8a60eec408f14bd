"""Slack incoming webhooks: ``text`` (the notification's line) plus ``blocks``.

Every value sits in a ``plain_text`` element with ``emoji: false``, which Slack shows as
typed: ``<!channel>``, ``*bold*``, ``<https://x|y>`` and ``:emoji:`` stay text. The
``text`` fallback (what a notification shows) is mrkdwn, so there each value is a code span
with ``& < >`` escaped as well (Slack reads ``<…>`` even inside code). Links are not
unfurled. Slack's limits: a header ≤ 150 characters, a section ≤ 10 fields of ≤ 2,000.

Slack answers 200 ``ok``; 400 ``invalid_payload``, 403, 404 ``no_service``, 410
``channel_is_archived`` are permanent; 429 carries ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from consumer.channels.http import JsonChannel, Poster
from consumer.channels.text import code_span
from consumer.core.notice import Notice, shorten
from schemas.receivers import Resolved


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: ``&``, ``<`` and ``>`` only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": shorten(text, limit), "emoji": False}


def payload(notice: Notice) -> dict[str, Any]:
    """The webhook's JSON body for ``notice``."""
    headline = " ".join(f"{f.label} {escape(code_span(f.value))}" for f in notice.headline)
    fields = [_plain(f"{f.label}: {f.value}", 1900) for f in notice.fields]
    sections = [
        {"type": "section", "fields": fields[n : n + 10]} for n in range(0, len(fields), 10)
    ]
    return {
        "text": f"*{escape(notice.summary)}* {headline}".strip(),
        "blocks": [{"type": "header", "text": _plain(notice.title, 150)}, *sections[:48]],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def channel(resolved: Resolved, poster: Poster) -> JsonChannel:
    return JsonChannel(poster, resolved.url, payload)
