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
    """Worth retrying: connection refused or dropped, timeout, SMTP 4xx."""


class PermanentSendError(SendError):
    """Retrying cannot help: SMTP 5xx, a bad address, a template error."""
