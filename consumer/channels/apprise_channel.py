"""Apprise, for the long tail (Pushover, Gotify, Matrix, Google Chat, …): one URL each.

``Apprise.notify()`` answers one boolean for all its targets together, and says nothing of
why. So each receiver holds exactly one Apprise URL (one target, one delivery record), and
a False is transient: the notice is parked and tried again, until the retry queues are
spent and it goes to the dead queue ("gave up after N parked attempts").

What this kind cannot keep (docs/channels.md): no failure is known to be permanent, so a
wrong token costs every retry before the dead queue; no status, so no ``Retry-After``; no
idempotency key, so a resend after an unknown outcome is a second message; connection
reuse, timeouts, redirects and TLS are each Apprise plugin's own (not ``ca_file``); and
how the body is shown is the service's: it goes as plain text, every value as typed.
Apprise logs through the ``apprise`` logger, which is turned down to CRITICAL: its lines
may quote a URL, which holds the credentials.
"""

from __future__ import annotations

import logging
from typing import Final

import apprise

from consumer.core.notice import Notice
from schemas.errors import ConfigError, TransientSendError
from schemas.receivers import Resolved

logging.getLogger("apprise").setLevel(logging.CRITICAL)

BODY_LIMIT: Final = 3500


class AppriseChannel:
    """The ``Channel`` of one ``apprise`` receiver.

    Raises (from the constructor):
        ConfigError: Apprise knows no service for the URL.
    """

    def __init__(self, resolved: Resolved) -> None:
        self.where = "apprise"
        self.apprise = apprise.Apprise()
        if not self.apprise.add(resolved.url):
            raise ConfigError(
                f"$.receiver.{resolved.name}.url_file: Apprise knows no service for the URL"
                f" in the file (it begins {resolved.shown})"
            )

    def deliver(self, notice: Notice) -> None:
        """Raises: TransientSendError: ``notify()`` said False (park; try later)."""
        text = "\n".join(f"{f.label}: {f.value}" for f in notice.fields)[:BODY_LIMIT]
        if not self.apprise.notify(body=text, title=notice.title[:200],
                                   body_format=apprise.NotifyFormat.TEXT):  # fmt: skip
            raise TransientSendError(f"{self.where}: notify() failed (Apprise says no more)")

    def close(self) -> None:
        self.apprise.clear()
