"""The host side's only contact with pika: one confirmed channel to the events exchange.

Every pika exception is wrapped into ``BrokerError`` here. Time is bounded at
every step: a broker node that accepts TCP and never speaks AMQP costs at most
``connect_timeout`` (pika's ``stack_timeout``) before the next node of ``[broker]
urls`` is tried, not a hung publisher. The nodes are tried one by one here rather
than by handing pika the list: pika gives up on the whole list when one node's name
does not resolve, and reports only the last node's error.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from schemas import topology
from schemas.config import BrokerConfig
from schemas.errors import BrokerError, PublishRefused
from schemas.nodes import broker_urls, broker_user
from schemas.tls import tls_context


class Nacked(PublishRefused):
    """The broker nacked an event: a full queue, or a quorum queue without a leader for a
    moment (its node died, the election is under way). Worth another try, elsewhere."""


class Channel:
    """A confirm-mode channel that publishes events as the configured broker user, on
    node ``node`` (an index of ``[broker] urls``)."""

    def __init__(self, connection: pika.BlockingConnection, user: str, node: int = 0) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_delivery()
        self._user = user
        self.node = node

    def publish(
        self, kind: str, body: bytes, message_id: str, time: datetime, message_type: str = ""
    ) -> None:
        """Publish one event of ``kind`` (or, with ``message_type``, a heartbeat or logout:
        ``schemas.wire.message_type``) and wait for the broker's confirm.

        The routing key is ``<our broker user>.<message type>`` (``host-web1.event``): the
        broker lets a host user write no other (its topic permission), and hashes the key
        onto the alert lane of this host (``schemas/topology.py``).

        Raises:
            Nacked: nacked (a full queue, a queue between leaders).
            PublishRefused: unroutable (no queue bound: run ``loginwatch setup``),
                or refused (a ``user_id`` that is not ours).
            BrokerError: the connection failed.
        """
        message_type = message_type or topology.message_type(kind)
        properties = pika.BasicProperties(
            content_type=topology.CONTENT_TYPE,
            type=topology.AMQP_TYPES.get(message_type, topology.MESSAGE_TYPE),
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            timestamp=int(time.timestamp()),
            user_id=self._user,
        )
        try:
            routing_key = topology.routing_key(self._user, message_type)
        except ValueError as exc:
            raise PublishRefused(str(exc)) from None
        try:
            self._channel.basic_publish(
                topology.EXCHANGE, routing_key, body, properties, mandatory=True
            )
        except pika.exceptions.UnroutableError:
            raise PublishRefused(
                f"{topology.EXCHANGE} has no queue for {routing_key!r}: run `loginwatch setup`"
            ) from None
        except pika.exceptions.NackError:
            raise Nacked("the broker nacked the event") from None
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise PublishRefused(f"the broker refused the event: {exc.reply_text}") from None
        except pika.exceptions.AMQPError as exc:
            raise BrokerError(f"publish failed: {exc!r}") from None

    def close(self) -> None:
        # Closing a broken connection: nothing is left to save.
        with contextlib.suppress(pika.exceptions.AMQPError):
            self._connection.close()


def connect(broker: BrokerConfig, order: Sequence[int] = (0,)) -> Channel:
    """Open a confirm-mode channel to the first node of ``order`` (indexes of the node
    URLs) that answers; each one that does not costs at most ``connect_timeout``.

    Raises:
        BrokerError: no node could be reached (every node's reason, in order):
            unreachable, silent, TLS or authentication failure.
        ConfigError: the password file or TLS files are unusable.
    """
    urls = broker_urls(broker)
    context = tls_context(broker)
    user = broker_user(broker)
    failures = []
    for index in order:
        params = _parameters(broker, urls[index], context)
        try:
            return Channel(pika.BlockingConnection(params), user, index)
        except pika.exceptions.ProbableAuthenticationError:
            failures.append(f"{params.host}:{params.port}: authentication refused")
        except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as exc:
            # A silent broker ends in AMQPConnectorStackTimeout, which is no AMQPError.
            failures.append(f"{params.host}:{params.port}: cannot connect: {_reason(exc)}")
    raise BrokerError("; ".join(failures))


def _parameters(
    broker: BrokerConfig, url: str, context: ssl.SSLContext | None
) -> pika.URLParameters:
    params = pika.URLParameters(url)
    # One try per node, bounded at every step: the next node is the retry.
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = broker.connect_timeout
    params.stack_timeout = broker.connect_timeout
    params.blocked_connection_timeout = broker.publish_timeout
    if context is not None and urlsplit(url).scheme == "amqps":
        params.ssl_options = pika.SSLOptions(context, params.host)
    return params


def _reason(exc: BaseException) -> str:
    """The innermost cause pika wraps: ``Connection refused``, ``timed out`` …"""
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    inner = getattr(exc, "exception", None)  # pika's connector phase errors
    for cause in (inner, *exc.args):
        if isinstance(cause, BaseException):
            return _reason(cause)
    return str(exc).split("'", 1)[0].strip() or type(exc).__name__
