"""The host side's only contact with pika: one confirmed channel to the events exchange.

Every pika exception is wrapped into ``BrokerError`` here. Time is bounded at
every step: a broker that accepts TCP and never speaks AMQP costs at most
``connect_timeout`` (pika's ``stack_timeout``), not a hung publisher.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from schemas import topology
from schemas.config import BrokerConfig, broker_url, broker_user
from schemas.errors import BrokerError, PublishRefused
from schemas.tls import tls_context


class Channel:
    """A confirm-mode channel that publishes events as the configured broker user."""

    def __init__(self, connection: pika.BlockingConnection, user: str) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_delivery()
        self._user = user

    def publish(self, routing_key: str, body: bytes, message_id: str, time: datetime) -> None:
        """Publish one event and wait for the broker's confirm.

        Raises:
            PublishRefused: unroutable (no queue bound: run ``loginwatch setup``),
                nacked, or refused (a ``user_id`` that is not ours).
            BrokerError: the connection failed.
        """
        properties = pika.BasicProperties(
            content_type=topology.CONTENT_TYPE,
            type=topology.MESSAGE_TYPE,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            timestamp=int(time.timestamp()),
            user_id=self._user,
        )
        try:
            self._channel.basic_publish(
                topology.EXCHANGE, routing_key, body, properties, mandatory=True
            )
        except pika.exceptions.UnroutableError:
            raise PublishRefused(
                f"{topology.EXCHANGE} has no queue for {routing_key!r}: run `loginwatch setup`"
            ) from None
        except pika.exceptions.NackError:
            raise PublishRefused("the broker nacked the event") from None
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise PublishRefused(f"the broker refused the event: {exc.reply_text}") from None
        except pika.exceptions.AMQPError as exc:
            raise BrokerError(f"publish failed: {exc!r}") from None

    def close(self) -> None:
        # Closing a broken connection: nothing is left to save.
        with contextlib.suppress(pika.exceptions.AMQPError):
            self._connection.close()


def connect(broker: BrokerConfig) -> Channel:
    """Open a confirm-mode channel to the broker.

    Raises:
        BrokerError: unreachable, silent, TLS or authentication failure.
        ConfigError: the password file or TLS files are unusable.
    """
    params = pika.URLParameters(broker_url(broker))
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = broker.connect_timeout
    params.stack_timeout = broker.connect_timeout
    params.blocked_connection_timeout = broker.publish_timeout
    context = tls_context(broker)
    if context is not None:
        params.ssl_options = pika.SSLOptions(context, params.host)
    try:
        connection = pika.BlockingConnection(params)
        return Channel(connection, broker_user(broker))
    except pika.exceptions.ProbableAuthenticationError:
        raise BrokerError(f"{params.host}:{params.port}: authentication refused") from None
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as exc:
        # A silent broker ends in AMQPConnectorStackTimeout, which is no AMQPError.
        raise BrokerError(f"{params.host}:{params.port}: cannot connect: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The innermost cause pika wraps: ``Connection refused``, ``timed out`` …"""
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    inner = getattr(exc, "exception", None)  # pika's connector phase errors
    for cause in (inner, *exc.args):
        if isinstance(cause, BaseException):
            return _reason(cause)
    return str(exc).split("'", 1)[0].strip() or type(exc).__name__
