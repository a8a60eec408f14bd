"""RabbitMQ for the central side: the only module that imports pika.

One ``Broker`` is one ``BlockingConnection`` with two channels, and one more per queue it
consumes: ``work`` gets and acks what it got; ``publish`` is in confirm mode, so
``publish`` returns only once the broker has the message. Each consumed queue has a
channel of its own, so its prefetch and its delivery tags are its own: a flooded alert lane
holds only its prefetch of the worker, and its acks go out as runs of its own tags. Every
pika (and socket) failure leaves this module as a ``schemas.errors.BrokerError``
(architecture.md #6).

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

from consumer.broker.delivery import Delivery, QueueState
from schemas import topology
from schemas.config import BrokerConfig
from schemas.errors import BrokerError, PublishRefused, QueueMissing, TopologyConflict
from schemas.nodes import NodeCursor, broker_urls
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
_COMMAND_INVALID = 503


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


@contextmanager
def _plugin_hint(kind: str) -> Iterator[None]:
    """A ``BrokerError`` about an unknown exchange type names the plugin that brings it."""
    try:
        yield
    except BrokerError as exc:
        if kind == topology.LANES_EXCHANGE_TYPE and "exchange type" in str(exc):
            raise BrokerError(
                f"{exc}; enable RabbitMQ's plugin on every node: rabbitmq-plugins enable"
                f" {topology.HASH_PLUGIN} (deploy/install-central.sh does), then rerun setup"
            ) from None
        raise


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
        self._consuming: dict[str, BlockingChannel] = {}  # queue → its consumer's channel
        self.generation = 0  # unique per connection, across every Broker of the process
        # Deliveries handed to a consume callback and not yet settled, per queue: tag →
        # when it came. Kept here, where every delivery passes, so a consumer that files
        # one where nothing reads it still shows (``held``).
        self._held: dict[str, dict[int, float]] = {}
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
        self._consuming.clear()

    def close(self) -> None:
        """Close the connection; unacked deliveries go back to their queues. A connection
        that was lost (not closed by us) sends the next connect to the next node."""
        self._held.clear()
        self._consuming.clear()
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
        """Declare the exchanges and their bindings, ``specs`` and their bindings
        (idempotent), and remove ``topology.RETIRED_BINDINGS``.

        Raises:
            TopologyConflict: one exists with other arguments.
            BrokerError: any other failure (naming the plugin when the consistent-hash
                exchange type is unknown).
        """
        connection, _, _ = self._channels()
        with _wrapped("declare"):
            channel = connection.channel()
        for name, kind in topology.EXCHANGES:
            with _wrapped(f"exchange {name}", declaring=True), _plugin_hint(kind):
                channel.exchange_declare(name, kind, durable=True)
        for destination, source, key in topology.EXCHANGE_BINDINGS:
            with _wrapped(f"bind exchange {destination} to {source}"):
                channel.exchange_bind(destination, source, routing_key=key)
        for spec in specs:
            with _wrapped(f"queue {spec.name}", declaring=True):
                channel.queue_declare(spec.name, durable=True, arguments=dict(spec.arguments))
                for exchange, key in spec.bindings:
                    channel.queue_bind(spec.name, exchange, routing_key=key)
        for source, queue, key in topology.RETIRED_BINDINGS:
            # Unbinding what is not bound changes nothing; a queue that is not there is
            # no error either (it is simply not bound).
            with contextlib.suppress(QueueMissing), _wrapped(f"unbind {queue} from {source}"):
                channel.queue_unbind(queue, source, routing_key=key)
            if not channel.is_open:
                with _wrapped("declare"):
                    channel = connection.channel()
        with _wrapped("declare"):
            channel.close()

    def retire_lane(self, name: str) -> QueueState | None:
        """Unbind alert lane ``name`` from the lanes exchange (nothing new reaches it) and
        delete it once it is empty and nobody consumes it; returns what it still holds
        (ready messages, consumers), or None when it is gone (deleted, or never there).
        A message in it is never deleted: ``moves.move_all`` empties it first, and a lane a
        worker still consumes (with deliveries unacked, which a count does not show) stays.

        Raises:
            BrokerError: the broker failed.
        """
        connection, _, _ = self._channels()
        with _wrapped(f"retire {name}"):
            channel = connection.channel()
        try:
            with _wrapped(f"retire {name}"):
                channel.queue_declare(name, passive=True)
        except QueueMissing:
            return None
        with _wrapped(f"retire {name}"):
            channel.queue_unbind(name, topology.LANES_EXCHANGE,
                                 routing_key=topology.LANE_WEIGHT)  # fmt: skip
            state = channel.queue_declare(name, passive=True).method
            held = QueueState(name, int(state.message_count), int(state.consumer_count))
            if not held.messages and not held.consumers:
                # Quorum queues take no if-empty delete. Unbound, nothing routes here but
                # the probe of a worker that still counts this lane, which may go.
                channel.queue_delete(name)
            channel.close()
        return None if not held.messages and not held.consumers else held

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
        message_type: str = topology.MESSAGE_TYPE,
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
            type=message_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=dict(headers or {}),
            message_id=message_id,
            timestamp=timestamp,
            user_id=self.user,
        )
        with _wrapped(f"publish to {exchange or 'default'}/{routing_key}"):
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)

    # -- consume ----------------------------------------------------------------

    def _delivery(
        self, method: Any, properties: BasicProperties, body: bytes, queue: str = ""
    ) -> Delivery:
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
            queue=queue,
            type=properties.type,
            arrived=time.time(),
        )

    def consume(self, queue: str, prefetch: int, on_delivery: Callable[[Delivery], None]) -> str:
        """Start consuming ``queue`` on a channel of its own, with ``prefetch`` unacked
        deliveries at most; ``on_delivery`` runs on this thread, keep it short.

        Raises:
            QueueMissing: the queue does not exist.
            BrokerError: any other failure.
        """
        connection, _, _ = self._channels()
        held = self._held.setdefault(queue, {})

        def callback(
            _channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
        ) -> None:
            held[method.delivery_tag] = time.monotonic()
            on_delivery(self._delivery(method, props, body, queue))

        with _wrapped(f"consume {queue}"):
            channel = connection.channel()
            channel.basic_qos(prefetch_count=prefetch)
            tag: str = channel.basic_consume(queue, callback)
        self._consuming[queue] = channel
        return tag

    def cancel(self, consumer_tag: str) -> None:
        """Stop new deliveries to ``consumer_tag`` (in-flight ones stay ours to settle)."""
        self._channels()
        for channel in self._consuming.values():
            if consumer_tag in channel.consumer_tags:
                with _wrapped("cancel consumer"):
                    channel.basic_cancel(consumer_tag)

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
        return self._delivery(method, properties, body, "")

    def ack(self, delivery: Delivery, *, through: bool = False) -> None:
        """Acknowledge ``delivery``: the broker forgets it. ``through``: and every
        delivery before it of the same queue still unacknowledged (one frame for a run of
        them; only for a caller that knows each one of them is settled).

        Raises:
            BrokerError: the connection (or the delivery's generation) is gone.
        """
        channel = self._channel_of(delivery)
        with _wrapped("ack"):
            channel.basic_ack(delivery.tag, multiple=through)
        self._settled(delivery, through)

    def requeue(self, delivery: Delivery) -> None:
        """Give ``delivery`` back to its queue unchanged.

        Raises:
            BrokerError: the connection (or the delivery's generation) is gone.
        """
        channel = self._channel_of(delivery)
        with _wrapped("requeue"):
            channel.basic_nack(delivery.tag, requeue=True)
        self._settled(delivery, False)

    def _channel_of(self, delivery: Delivery) -> BlockingChannel:
        """The channel ``delivery`` came on: its consumer's, else the work channel (``get``)."""
        _, work, _ = self._channels()
        self._check_generation(delivery)
        return self._consuming.get(delivery.queue, work)

    def _settled(self, delivery: Delivery, through: bool) -> None:
        held = self._held.get(delivery.queue, {})
        if through:
            for tag in [t for t in held if t <= delivery.tag]:
                del held[tag]
        else:
            held.pop(delivery.tag, None)

    def held(self, queue: str) -> tuple[int, float]:
        """(deliveries of ``queue`` consumed on this connection and not yet acked or
        requeued, the seconds the oldest of them has been waiting; 0.0 when none)."""
        held = self._held.get(queue)
        if not held:
            return 0, 0.0
        return len(held), time.monotonic() - min(held.values())

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
