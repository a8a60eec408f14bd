"""Mattermost incoming webhooks: ``text``, Markdown (Mattermost ignores Slack's blocks).

Every value is a code span, and each ``@`` in a value is shown as ``＠`` (U+FF20): an
``@channel``, ``@all`` or ``@here`` that a remote party chose would otherwise ping everyone
in the channel, and an ``@name`` its owner. A post holds at most 16,383 characters.

Mattermost answers 200 ``ok``; 400 and 403 (a disabled or deleted hook) are permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from consumer.channels.http import JsonChannel, Poster
from consumer.channels.text import code_span, fit
from consumer.core.notice import Field, Notice
from schemas.receivers import Resolved

LIMIT: Final = 16_000


def literal(value: str) -> str:
    """A value as Mattermost shows it literally: a code span, its mentions neutralised."""
    return code_span(value.replace("@", "\uff20"))


def payload(notice: Notice) -> dict[str, Any]:
    """The webhook's JSON body for ``notice``."""
    headline = " ".join(f"{f.label} {literal(f.value)}" for f in notice.headline)

    def render(fields: Sequence[Field]) -> str:
        lines = [f"**{notice.summary}** {headline}".strip(), ""]
        lines += [f"**{f.label}:** {literal(f.value)}" for f in fields]
        return "\n".join(lines)

    return {"text": fit(notice.fields, LIMIT, render)}


def channel(resolved: Resolved, poster: Poster) -> JsonChannel:
    return JsonChannel(poster, resolved.url, payload)
