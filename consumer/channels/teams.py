"""Microsoft Teams through a Workflows webhook: one Adaptive Card per notice.

Each value is a TextBlock of its own with its Markdown escaped (``text.escape_markdown``),
in a monospace font; the labels are ours. A card stays well under Teams' ~28 KB.

Office 365 connector URLs (``…webhook.office.com/webhookb2/…``) are retired: the config
refuses them and says to create a Workflows webhook (``schemas/receivers.py``). A Workflows
webhook answers 202 Accepted when it *queued* the flow: a 2xx there is no delivery, only
the flow's start; a flow that then fails shows in its run history, not here.
"""

from __future__ import annotations

from typing import Any, Final

from consumer.channels.http import JsonChannel, Poster
from consumer.channels.text import escape_markdown
from consumer.core.notice import Notice, shorten
from schemas.receivers import Resolved

CARD: Final = "application/vnd.microsoft.card.adaptive"
VALUE_LIMIT: Final = 1000


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _value(value: str) -> dict[str, Any]:
    literal = escape_markdown(shorten(value, VALUE_LIMIT))
    return _text(literal, fontType="Monospace", spacing="None")


def card(notice: Notice) -> dict[str, Any]:
    """The Adaptive Card (1.4) of ``notice``."""
    body: list[dict[str, Any]] = [_text(escape_markdown(notice.summary), weight="Bolder",
                                        size="Medium")]  # fmt: skip
    for field in notice.headline:
        body += [_text(field.label, isSubtle=True, spacing="Small"), _value(field.value)]
    for field in notice.fields:
        body += [_text(escape_markdown(field.label), weight="Bolder", spacing="Medium"),
                 _value(field.value)]  # fmt: skip
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }


def payload(notice: Notice) -> dict[str, Any]:
    """The Workflows webhook's JSON body: a message with the card as its one attachment."""
    return {
        "type": "message",
        "attachments": [{"contentType": CARD, "contentUrl": None, "content": card(notice)}],
    }


def channel(resolved: Resolved, poster: Poster) -> JsonChannel:
    return JsonChannel(poster, resolved.url, payload)
