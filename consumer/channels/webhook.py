"""Standard Webhooks v1: a signed JSON POST whose body follows ``webhook.v1.schema.json``.

Headers (https://www.standardwebhooks.com, the ``standardwebhooks`` reference library):

- ``webhook-id``: derived from the delivery key (``text.delivery_id``), the same on every
  retry and every redelivery, so a receiver folds a resend by it;
- ``webhook-timestamp``: the attempt's time, in Unix seconds (a receiver refuses stale ones);
- ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body`` under
  each ``whsec_`` key of ``secret_file``, space-separated: add the new key, let receivers
  accept it, drop the old one, and no delivery goes unsigned on the way.

The body is ``{"version": 1, "type": …, "timestamp": …, "id": …, "target": …, "title": …,
"data": …}``: ``type`` is ``loginwatch.alert``, ``.burst``, ``.digest``, ``.test`` or ``.system``;
``data`` is the event exactly as the host sent it (every string is text a remote party
chose: treat it as such), its enrichment and the decision, or a digest's counts. A 2xx
is a delivery; 410 Gone, like every other 4xx, sends the notice to the dead queue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from importlib.resources import files
from typing import Any, Final

import msgspec

from consumer.channels.http import Poster
from consumer.channels.text import delivery_id
from consumer.core.notice import Notice
from schemas.receivers import Resolved

VERSION: Final = 1
SCHEMA_FILE: Final = "webhook.v1.schema.json"


def schema() -> dict[str, Any]:
    """The shipped JSON Schema of the body (the same file docs/channels.md points at)."""
    text = files("consumer.channels").joinpath(SCHEMA_FILE).read_text("utf-8")
    found: dict[str, Any] = msgspec.json.decode(text)
    return found


def body(notice: Notice) -> bytes:
    """The JSON body of ``notice``."""
    made = notice.made.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return msgspec.json.encode({
        "version": VERSION,
        "type": notice.type,
        "timestamp": made,
        "id": delivery_id(notice.key),
        "target": notice.target,
        "title": notice.title,
        "data": notice.data,
    })  # fmt: skip


def sign(keys: tuple[str, ...], message_id: str, timestamp: str, payload: bytes) -> str:
    """``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per ``whsec_`` key."""
    signed = f"{message_id}.{timestamp}.".encode() + payload
    return " ".join(
        "v1,"
        + base64.b64encode(
            hmac.new(base64.b64decode(key.removeprefix("whsec_")), signed, hashlib.sha256).digest()
        ).decode()
        for key in keys
    )


class WebhookChannel:
    """The ``Channel`` of one ``webhook`` receiver."""

    def __init__(
        self, resolved: Resolved, poster: Poster, clock: Callable[[], float] = time.time
    ) -> None:
        self.url = resolved.url
        self.keys = resolved.keys
        self.poster = poster
        self.clock = clock

    def headers(self, message_id: str, payload: bytes) -> Callable[[], Mapping[str, str]]:
        """The headers of each attempt: a fresh timestamp, signed afresh."""

        def made() -> Mapping[str, str]:
            stamp = str(int(self.clock()))
            return {
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": stamp,
                "webhook-signature": sign(self.keys, message_id, stamp, payload),
            }

        return made

    def deliver(self, notice: Notice) -> None:
        """Raises: TransientSendError, PermanentSendError (``Poster.post``)."""
        payload = body(notice)
        self.poster.post(self.url, payload, self.headers(delivery_id(notice.key), payload))

    def close(self) -> None:
        self.poster.close()
