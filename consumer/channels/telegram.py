"""Telegram's Bot API ``sendMessage``, ``parse_mode`` HTML, every value inside ``<code>``.

Inside ``<code>`` Telegram makes no entity of the text: no link, no mention, no bot
command, no bold. The value is HTML-escaped (``& < >``, all the Bot API's HTML knows), so
nothing can close the tag. Link previews are off. A message is at most 4,096 characters.

The bot token is part of the URL's path (``/bot<token>/sendMessage``): it is never logged
(``channels/http.py``). A 429 says how long to wait in ``parameters.retry_after``; 400
(``chat not found``), 401 (a revoked token) and 403 (the bot was removed) are permanent.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from consumer.channels.http import Answer, JsonChannel, Poster, field_seconds
from consumer.channels.text import fit
from consumer.core.notice import Field, Notice
from schemas.receivers import Resolved, TelegramReceiver

LIMIT: Final = 4096


def literal(value: str) -> str:
    return f"<code>{html.escape(value, quote=False)}</code>"


def payload(notice: Notice, chat_id: int | str) -> dict[str, Any]:
    """The ``sendMessage`` JSON body for ``notice``."""
    headline = " ".join(f"{f.label} {literal(f.value)}" for f in notice.headline)

    def render(fields: Sequence[Field]) -> str:
        lines = [f"<b>{html.escape(notice.summary)}</b> {headline}".strip(), ""]
        lines += [f"<b>{html.escape(f.label)}:</b> {literal(f.value)}" for f in fields]
        return "\n".join(lines)

    return {
        "chat_id": chat_id,
        "text": fit(notice.fields, LIMIT, render),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
        "disable_notification": notice.priority == "low",
    }


def retry_field(answer: Answer) -> float | None:
    """``{"ok": false, "error_code": 429, "parameters": {"retry_after": 5}}``."""
    try:
        found = msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        return None
    parameters = found.get("parameters") if isinstance(found, dict) else None
    if not isinstance(parameters, dict):
        return None
    return field_seconds(parameters.get("retry_after"))


def channel(resolved: Resolved, poster: Poster, receiver: TelegramReceiver) -> JsonChannel:
    chat = receiver.chat_id
    return JsonChannel(poster, resolved.url, lambda n: payload(n, chat), retry_field=retry_field)
