"""ntfy (ntfy.sh or your own server): a JSON publish, plain text, priority and tags.

The message is plain text (``markdown: false``) and the title too: ntfy shows both as
they are. ``priority`` comes from the notice (high → 4, default → 3, low → 2), ``tags``
from the decision (``login``, ``first-seen``, ``burst``). A token (``Authorization: Bearer``)
or a user and password (basic auth) authenticate the publish.

``sequence_id`` is derived from the delivery key: a resend of the same notice (a retry
after a timeout, a redelivery after a crash) *replaces* the first in place on ntfy server
2.16 and later with the Android app 1.22 and later; an older server ignores the field and
shows the resend as a second notification. A message over 4,096 bytes would become an
attachment: the longest values are cut to stay under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from consumer.channels.http import JsonChannel, Poster
from consumer.channels.text import delivery_id, fit, utf8_size
from consumer.core.notice import Field, Notice, shorten
from schemas.receivers import NtfyReceiver, Resolved

LIMIT: Final = 3900  # bytes: ntfy's message-size-limit is 4,096
PRIORITY: Final = {"high": 4, "default": 3, "low": 2}


def payload(notice: Notice, topic: str) -> dict[str, Any]:
    """The publish's JSON body for ``notice`` on ``topic``."""

    def render(fields: Sequence[Field]) -> str:
        return "\n".join(f"{f.label}: {f.value}" for f in fields)

    return {
        "topic": topic,
        "title": shorten(notice.title, 200),
        "message": fit(notice.fields, LIMIT, render, size=utf8_size),
        "priority": PRIORITY.get(notice.priority, 3),
        "tags": list(notice.tags),
        "markdown": False,
        "sequence_id": delivery_id(notice.key),
    }


def channel(resolved: Resolved, poster: Poster, receiver: NtfyReceiver) -> JsonChannel:
    topic = receiver.topic
    return JsonChannel(poster, resolved.url, lambda n: payload(n, topic))
