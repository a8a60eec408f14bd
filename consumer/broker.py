"""RabbitMQ for the central side: the only module that imports pika.

One ``Broker`` is one ``BlockingConnection`` with two channels: ``work`` consumes,
gets and acks; ``publish`` is in confirm mode, so ``publish`` returns only once the
broker has the message. Every pika (and socket) failure leaves this module as a
``schemas.errors.BrokerError`` (STYLE.md #6).

pika's BlockingConnection has no I/O thread: everything here runs on the thread
that owns the connection, except ``call_soon``, which other threads use to hand
it work (acks after a delivery) through ``add_callback_threadsafe``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.spec import Basic, BasicProperties

from consumer.delivery import Delivery, QueueState
from schemas import topology
from schemas.config import BrokerConfig, NodeCursor, broker_urls
from schemas.errors import BrokerError, PublishRefused, QueueMissing, TopologyConflict
from schemas.tls import tls_context

log = logging.getLogger(__name__)

# A silent broker ends in AMQPConnectorStackTimeout, which is no AMQPError.
_PIKA_ERRORS = (pika.exceptions.AMQPError, AMQPConnectorException, OSError)
# Delivery tags are only valid on the channel that issued them: every connection
# gets a number of its own, so a delivery from a lost connection is never acked
# on its successor.
_GENERATIONS = itertools.count(1)
_PRECONDITION_FAILED = 406
_NOT_FOUND = 404


def connection_parameters(
    config: BrokerConfig, heartbeat: int = 30
) -> tuple[pika.URLParameters, ...]:
    """pika parameters for each broker node (in the order of ``[broker] urls``): URL,
    password file, TLS, heartbeat, timeouts. One try per node, each bounded by
    ``connect_timeout``: the next node is the retry.

    Raises:
        ConfigError: the password file is missing or too open, or a TLS file is unusable.
    """
    context = tls_context(config)
    nodes = []
    for url in broker_urls(config):
        params = pika.URLParameters(url)
        if context is not None and urlsplit(url).scheme == "amqps":
            params.ssl_options = pika.SSLOptions(context, server_hostname=urlsplit(url).hostname)
        params.heartbeat = heartbeat
        params.socket_timeout = config.connect_timeout
        params.stack_timeout = config.connect_timeout
        params.blocked_connection_timeout = config.publish_timeout
        params.connection_attempts = 1
        params.retry_delay = 0
        nodes.append(params)
    return tuple(nodes)


def node_cursor(config: BrokerConfig) -> NodeCursor:
    """A consumer's node cursor, starting at the node of this machine's name. One cursor
    serves every ``Broker`` a runtime opens in turn (``Broker(config, nodes=cursor)``)."""
    return NodeCursor(len(config.nodes), socket.gethostname())


def _describe(exc: BaseException) -> str:
    if isinstance(
        exc, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)
    ):
        return "authentication refused (check the broker user and password)"
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return "access refused (check the vhost and the user's permissions)"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, AMQPConnectorException):
        # "Timeout during AMQP handshake'127.0.0.1'/(<AddressFamily…>…)": keep the words.
        return text.split("'", 1)[0].strip() or type(exc).__name__
    if isinstance(exc, pika.exceptions.AMQPConnectionError) and not str(exc).strip("()"):
        return "cannot connect (is RabbitMQ running and reachable?)"
    return text


@contextmanager
def _wrapped(action: str, *, declaring: bool = False) -> Iterator[None]:
    """Turn pika's and the socket's exceptions into ``BrokerError`` naming ``action``."""
    try:
        yield
    except pika.exceptions.UnroutableError:
        raise PublishRefused(f"{action}: unroutable (is the topology declared?)") from None
    except pika.exceptions.NackError:
        raise PublishRefused(f"{action}: the broker refused the message") from None
    except pika.exceptions.ChannelClosedByBroker as exc:
        detail = exc.reply_text.split(" - ", 1)[-1]
        if exc.reply_code == _NOT_FOUND:
            raise QueueMissing(f"{action}: {detail} (run loginwatch setup)") from None
        if exc.reply_code == _PRECONDITION_FAILED and declaring:
            raise TopologyConflict(
                f"{action} exists with other settings ({detail}); drain and delete it"
                " (rabbitmqctl delete_queue) or keep its old settings, then rerun setup"
            ) from None
        raise BrokerError(f"{action}: {exc.reply_code} {detail}") from None
    except _PIKA_ERRORS as exc:
        raise BrokerError(f"{action}: {_describe(exc)}") from exc


class Broker:
    """A connection to RabbitMQ with a work channel and a confirming publish channel."""

    def __init__(
        self, config: BrokerConfig, heartbeat: int = 30, nodes: NodeCursor | None = None
    ) -> None:
        self._nodes = connection_parameters(config, heartbeat)
        self.nodes = nodes if nodes is not None else node_cursor(config)
        self.node = 0  # the index of the node connected to (or last tried)
        self._connection: pika.BlockingConnection | None = None
        self._work: BlockingChannel | None = None
        self._publish: BlockingChannel | None = None
        self.generation = 0  # unique per connection, across every Broker of the process
        # Deliveries handed to a consume callback and not yet settled: tag → when it came.
        # Kept here, where every delivery passes, so a consumer that files one where
        # nothing reads it still shows (``held``).
        self._held: dict[int, float] = {}
        # EXTERNAL (client certificate) credentials have no user name to claim.
        self.user: str | None = getattr(self._nodes[0].credentials, "username", None)

    def where(self, node: int | None = None) -> str:
        """``host:port`` of ``node`` (default: the one connected to), and the vhost."""
        params = self._nodes[self.node if node is None else node]
        vhost = "" if params.virtual_host == "/" else f" vhost {params.virtual_host}"
        return f"{params.host}:{params.port}{vhost}"

    def connect(self) -> None:
        """Open the connection and both channels, on the first broker node that answers:
        the one this process used last, or after a lost connection the next one (each
        node that does not answer costs at most ``connect_timeout``).

        Raises:
            BrokerError: no node could be reached, or each refused (every node's reason).
        """
        count = len(self._nodes)
        failures = []
        for node in self.nodes.order():
            self.node = node
            try:
                self._open(self._nodes[node])
            except BrokerError as exc:
                failures.append(str(exc))
                continue
            self.nodes.worked(node)
            if count > 1:
                skipped = f" ({'; '.join(failures)})" if failures else ""
                log.info("connected to broker node %s%s", self.where(), skipped)
            return
        raise BrokerError("; ".join(failures))

    def _open(self, params: pika.URLParameters) -> None:
        with _wrapped(f"connect to {self.where()}"):
            connection = pika.BlockingConnection(params)
            try:
                self._work = connection.channel()
                self._publish = connection.channel()
                self._publish.confirm_delivery()
            except _PIKA_ERRORS:
                with contextlib.suppress(*_PIKA_ERRORS):
                    connection.close()
                raise
        self._connection = connection
        self.generation = next(_GENERATIONS)
        self._held.clear()

    def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues. A connection
        that was lost (not closed by us) sends the next connect to the next node."""
        self._held.clear()
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if not connection.is_open:
            self.nodes.lost(self.node)
            return
        try:
            connection.close()
        except _PIKA_ERRORS as exc:
            log.debug("closing the broker connection: %s", exc)

    def __enter__(self) -> Broker:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def cluster_name(self) -> str | None:
        """The cluster name the broker announced when we connected (None: not connected)."""
        if self._connection is None:
            return None
        # pika keeps connection.start's server properties on the connection's impl only.
        name = self._connection._impl.server_properties.get("cluster_name")
        return name.decode() if isinstance(name, bytes) else name

    @property
    def is_open(self) -> bool:
        return self._connection is not None and self._connection.is_open

    def _channels(self) -> tuple[pika.BlockingConnection, BlockingChannel, BlockingChannel]:
        if self._connection is None or self._work is None or self._publish is None:
            raise BrokerError("not connected")
        return self._connection, self._work, self._publish

    # -- topology ---------------------------------------------------------------

    def declare(self, specs: tuple[topology.QueueSpec, ...]) -> None:
        """Declare the exchanges, ``specs`` and their bindings (idempotent).

        Raises:
            TopologyConflict: one exists with other arguments.
            BrokerError: any other failure.
        """
        connection, _, _ = self._channels()
        with _wrapped("declare"):
            channel = connection.channel()
        for name, kind in topology.EXCHANGES:
            with _wrapped(f"exchange {name}", declaring=True):
                channel.exchange_declare(name, kind, durable=True)
        for spec in specs:
            with _wrapped(f"queue {spec.name}", declaring=True):
                channel.queue_declare(spec.name, durable=True, arguments=dict(spec.arguments))
                for exchange, key in spec.bindings:
                    channel.queue_bind(spec.name, exchange, routing_key=key)
        with _wrapped("declare"):
            channel.close()

    def queue_state(self, name: str) -> QueueState:
        """Depth and consumers of ``name`` (a passive declare: changes nothing).

        Raises:
            QueueMissing: no such queue.
            BrokerError: any other failure.
        """
        connection, _, _ = self._channels()
        with _wrapped(f"inspect queue {name}"):
            channel = connection.channel()
        with _wrapped(f"inspect queue {name}"):
            ok = channel.queue_declare(name, passive=True)
            channel.close()
        return QueueState(name, ok.method.message_count, ok.method.consumer_count)

    # -- publish ----------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        timestamp: int | None = None,
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm.

        ``user_id`` is always our own broker user: the broker checks it, so a
        consumer can tell our republished messages from a host's.

        Raises:
            PublishRefused: nacked or unroutable.
            BrokerError: the connection failed.
        """
        _, _, channel = self._channels()
        properties = BasicProperties(
            content_type=topology.CONTENT_TYPE,
            type=topology.MESSAGE_TYPE,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=dict(headers or {}),
            message_id=message_id,
            timestamp=timestamp,
            user_id=self.user,
        )
        with _wrapped(f"publish to {exchange or 'default'}/{routing_key}"):
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)

    # -- consume ----------------------------------------------------------------

    def _delivery(self, method: Any, properties: BasicProperties, body: bytes) -> Delivery:
        return Delivery(
            tag=method.delivery_tag,
            body=body,
            routing_key=method.routing_key,
            redelivered=bool(method.redelivered),
            message_id=properties.message_id,
            user_id=properties.user_id,
            timestamp=properties.timestamp,
            headers=dict(properties.headers or {}),
            generation=self.generation,
        )

    def consume(self, queue: str, prefetch: int, on_delivery: Callable[[Delivery], None]) -> str:
        """Start consuming ``queue``; ``on_delivery`` runs on this thread, keep it short.

        Raises:
            QueueMissing: the queue does not exist.
            BrokerError: any other failure.
        """
        _, work, _ = self._channels()

        def callback(
            _channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
        ) -> None:
            self._held[method.delivery_tag] = time.monotonic()
            on_delivery(self._delivery(method, props, body))

        with _wrapped(f"consume {queue}"):
            work.basic_qos(prefetch_count=prefetch)
            tag: str = work.basic_consume(queue, callback)
        return tag

    def cancel(self, consumer_tag: str) -> None:
        """Stop new deliveries to ``consumer_tag`` (in-flight ones stay ours to settle)."""
        _, work, _ = self._channels()
        with _wrapped("cancel consumer"):
            work.basic_cancel(consumer_tag)

    def get(self, queue: str) -> Delivery | None:
        """Take the next message of ``queue`` without acking it, or None when empty.

        Raises:
            QueueMissing: the queue does not exist.
            BrokerError: any other failure.
        """
        _, work, _ = self._channels()
        with _wrapped(f"get from {queue}"):
            method, properties, body = work.basic_get(queue, auto_ack=False)
        if method is None or properties is None or body is None:
            return None
        return self._delivery(method, properties, body)

    def ack(self, delivery: Delivery, *, through: bool = False) -> None:
        """Acknowledge ``delivery``: the broker forgets it. ``through``: and every
        delivery before it on this connection still unacknowledged (one frame for a run
        of them; only for a caller that knows each one of them is settled).

        Raises:
            BrokerError: the connection (or the delivery's generation) is gone.
        """
        _, work, _ = self._channels()
        self._check_generation(delivery)
        with _wrapped("ack"):
            work.basic_ack(delivery.tag, multiple=through)
        self._settled(delivery.tag, through)

    def requeue(self, delivery: Delivery) -> None:
        """Give ``delivery`` back to its queue unchanged.

        Raises:
            BrokerError: the connection (or the delivery's generation) is gone.
        """
        _, work, _ = self._channels()
        self._check_generation(delivery)
        with _wrapped("requeue"):
            work.basic_nack(delivery.tag, requeue=True)
        self._settled(delivery.tag, False)

    def _settled(self, tag: int, through: bool) -> None:
        if through:
            for held in [t for t in self._held if t <= tag]:
                del self._held[held]
        else:
            self._held.pop(tag, None)

    def held(self) -> tuple[int, float]:
        """(deliveries consumed on this connection and not yet acked or requeued, the
        seconds the oldest of them has been waiting; 0.0 when none)."""
        if not self._held:
            return 0, 0.0
        return len(self._held), time.monotonic() - min(self._held.values())

    def _check_generation(self, delivery: Delivery) -> None:
        if delivery.generation != self.generation:
            raise BrokerError("the delivery came from a connection that is gone")

    def process_events(self, seconds: float) -> None:
        """Run pika's I/O loop (deliveries, heartbeats, ``call_soon`` work) for ``seconds``.

        Raises:
            BrokerError: the connection failed.
        """
        connection, _, _ = self._channels()
        with _wrapped("connection"):
            connection.process_data_events(time_limit=seconds)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the connection's thread; callable from any thread.

        Raises:
            BrokerError: the connection is gone (the delivery will come back).
        """
        connection, _, _ = self._channels()
        with _wrapped("hand over to the connection thread"):
            connection.add_callback_threadsafe(callback)
