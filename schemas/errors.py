"""The one error hierarchy of loginwatch.

Foreign errors (pika, smtplib, sqlite3, psycopg, tomllib, msgspec) are wrapped
at the edge where they happen, so callers only ever catch these.
"""

from __future__ import annotations


class LoginwatchError(Exception):
    """Base of every error loginwatch raises on purpose."""


class ConfigError(LoginwatchError):
    """The configuration cannot be used; the message names the file and key."""


class DecodeError(LoginwatchError):
    """A message body is not a valid event; keeps the raw bytes for the dead queue."""

    def __init__(self, reason: str, data: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


class BrokerError(LoginwatchError):
    """RabbitMQ could not be reached, refused us, or did not confirm in time."""


class PublishRefused(BrokerError):
    """The broker nacked or returned a message (unroutable, forged user_id…)."""


class TopologyConflict(BrokerError):
    """A queue or exchange exists with other arguments than ours (PRECONDITION_FAILED)."""


class QueueMissing(BrokerError):
    """A queue we expected does not exist (``loginwatch setup`` was not run)."""


class StoreError(LoginwatchError):
    """The store (SQLite or PostgreSQL) failed."""


class SendError(LoginwatchError):
    """A mail could not be delivered."""


class TransientSendError(SendError):
    """Worth retrying: connection refused or dropped, timeout, SMTP 4xx, HTTP 429 and 5xx."""


class RetryLater(TransientSendError):
    """A receiver asked us to wait: HTTP 429 or 503 with ``Retry-After`` (or the channel's own
    field, e.g. Telegram's ``parameters.retry_after``); ``retry_after`` in seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying cannot help: SMTP 5xx, a bad address, a template error, HTTP 3xx and 4xx."""


class LinkError(LoginwatchError):
    """A signed link cannot be used; ``why`` is ``forged`` (altered, another key or action),
    ``expired`` or ``used`` (single-use, already spent): the page says which."""

    def __init__(self, why: str, reason: str) -> None:
        super().__init__(reason)
        self.why = why
