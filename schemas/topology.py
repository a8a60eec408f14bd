"""RabbitMQ names, defined once for the hook, the worker, setup and deploy/.

Routing keys name the speaker: ``<broker user>.<message type>`` (``host-web1.event``), and
RabbitMQ checks the prefix: every host user has a topic permission on the events exchange
that lets it write only keys that begin with its own name (``topic_write_pattern``). So a
key is something the broker vouches for, and the alert *lanes* can be chosen from it:

- ``loginwatch.events`` (topic) binds the digest queue with ``#`` (everything), the shared
  alerts queue ``loginwatch.alerts`` with ``*`` (the one-word keys of hooks from before
  lanes: their event's kind), and, by an exchange-to-exchange binding per message type
  (``*.#.event``), the lanes exchange;
- ``loginwatch.lanes`` (``x-consistent-hash``, the plugin RabbitMQ ships) hashes the whole
  routing key over ``alert_lanes`` lane queues ``loginwatch.alerts.0`` …: one speaker's
  messages of one type all land in one lane, whatever else it sends;
- the worker consumes the shared queue and every lane with a prefetch of its own, round
  robin, so a flooded lane holds only its share of the worker (consumer/alerts/lanes.py).

The message type, not the event's kind, ends the key: a hash over ``user.kind`` would give
one speaker a lane per kind it claims. Heartbeats and logouts are types of their own, with
bindings of their own (``MESSAGE_TYPES``, ``type_binding``); a binding that a release no longer
wants goes into ``RETIRED_BINDINGS``, which ``loginwatch setup`` removes on a live install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

EXCHANGE: Final = "loginwatch.events"
EXCHANGE_TYPE: Final = "topic"
# Hashes each routing key onto one lane (rabbitmq_consistent_hash_exchange, shipped with
# RabbitMQ and enabled by deploy/install-central.sh; `setup` says so when it is missing).
LANES_EXCHANGE: Final = "loginwatch.lanes"
LANES_EXCHANGE_TYPE: Final = "x-consistent-hash"
HASH_PLUGIN: Final = "rabbitmq_consistent_hash_exchange"

ALERTS_QUEUE: Final = "loginwatch.alerts"
DIGEST_QUEUE: Final = "loginwatch.digest"
DEAD_QUEUE: Final = "loginwatch.dead"
# Dead-lettered messages and parked retries travel through this direct exchange,
# routed by the name of the queue they should land in.
REROUTE_EXCHANGE: Final = "loginwatch.reroute"

# One queue per delay, because a TTL only expires messages at a queue's head.
RETRY_DELAYS_S: Final = (30, 120, 600, 1800)

BINDING_KEY: Final = "#"
CONTENT_TYPE: Final = "application/msgpack"
MESSAGE_TYPE: Final = "loginwatch.LoginEvent"
# The AMQP `type` of a lane probe (consumer/alerts/lanes.py): our own, under our own user.
PROBE_TYPE: Final = "loginwatch.Probe"

# The routing key's last word: what type of message it is (schemas/wire.py's tags). Every
# PAM event is an "event" (login, failure, sudo … alike: the worker decides by the body, and
# one word per speaker keeps one speaker in one lane); the flush timer's heartbeats and the
# logouts it recovers from wtmp have a type each, so a queue binds the types it handles
# (``type_binding``). The digest queue binds ``#`` and so receives all three.
EVENT_TYPE: Final = "event"
HEARTBEAT_TYPE: Final = "heartbeat"
LOGOUT_TYPE: Final = "logout"
MESSAGE_TYPES: Final = (EVENT_TYPE, HEARTBEAT_TYPE, LOGOUT_TYPE)
# What the lanes exchange receives, per message type (exchange-to-exchange bindings):
# keys of two words or more that end in the type. A one-word key (an old hook's) never
# matches; it reaches the shared queue through LEGACY_KEY. The worker handles all three:
# events, heartbeats (the hosts table, quiet hosts, hop addresses) and logouts (linked to
# their login); `setup` binds each type, and the digest's ``#`` receives them all too.
ALERT_TYPES: Final = MESSAGE_TYPES
# The AMQP ``type`` property of each message type (informative: consumers decide by the body).
AMQP_TYPES: Final = {
    EVENT_TYPE: MESSAGE_TYPE,
    HEARTBEAT_TYPE: "loginwatch.Heartbeat",
    LOGOUT_TYPE: "loginwatch.Logout",
}
# An old hook's routing key is its event's kind, one word.
LEGACY_KEY: Final = "*"
# AMQP's limit on a routing key (a shortstr).
MAX_ROUTING_KEY: Final = 255

# Headers.
HEADER_REASON: Final = "x-loginwatch-reason"  # why a message is in the dead queue
HEADER_ORIGIN: Final = "x-loginwatch-origin"  # the work queue a retry returns to
HEADER_ATTEMPT: Final = "x-loginwatch-attempt"  # parked deliveries so far
HEADER_DEAD_AT: Final = "x-loginwatch-dead-at"  # when the worker dead-lettered it (epoch s)
# The broker user a message had on arrival ("" for none), written by the central side
# whenever it republishes a message (park, dead-letter, replay) under its own user.
HEADER_USER_ID: Final = "x-loginwatch-user-id"
# On a dead-lettered body over the size limit, cut to the limit: what arrived.
HEADER_BODY_SIZE: Final = "x-loginwatch-body-size"  # its length in bytes
HEADER_BODY_SHA256: Final = "x-loginwatch-body-sha256"  # its SHA-256, hex
# The headers only the central side writes. They are believed only on a message whose
# user_id property is the central side's own broker user (which the broker checks, so a
# host cannot claim it); a republished copy carries these and nothing else of the original.
CENTRAL_HEADERS: Final = (HEADER_USER_ID, HEADER_ORIGIN, HEADER_ATTEMPT, HEADER_REASON,
                          HEADER_DEAD_AT, HEADER_BODY_SIZE, HEADER_BODY_SHA256)  # fmt: skip

# How long a work queue redelivers a message that keeps crashing a worker.
DELIVERY_LIMIT: Final = 20


def retry_queue(delay_s: int) -> str:
    return f"loginwatch.retry.{delay_s}s"


def message_type(kind: str) -> str:
    """The message type of a ``LoginEvent`` of ``kind``: ``event`` for every kind (heartbeats
    and logouts have types of their own: ``schemas.wire.message_type``)."""
    del kind
    return EVENT_TYPE


def routing_key(user: str, message_type: str = EVENT_TYPE) -> str:
    """``<user>.<message type>``: what a publisher as broker user ``user`` sends with, and
    all its topic permission lets it send (``topic_write_pattern``).

    Raises:
        ValueError: longer than AMQP allows (``MAX_ROUTING_KEY``).
    """
    key = f"{user}.{message_type}"
    if len(key.encode()) > MAX_ROUTING_KEY:
        raise ValueError(
            f"routing key of {len(key.encode())} bytes: the broker user name is"
            f" too long (at most {MAX_ROUTING_KEY} bytes with .{message_type})"
        )
    return key


def type_binding(message_type: str) -> str:
    """The topic binding key that matches ``<user>.<message_type>`` for any user, dotted
    names included, and no one-word key."""
    return f"*.#.{message_type}"


def lane_queue(index: int) -> str:
    """The name of alert lane ``index`` (0-based)."""
    return f"{ALERTS_QUEUE}.{index}"


def alert_queues(lanes: int) -> tuple[str, ...]:
    """Every queue the alert worker consumes: the shared queue, then each lane."""
    return (ALERTS_QUEUE, *(lane_queue(i) for i in range(lanes)))


# A lane's binding weight on the hash exchange: one bucket each, so jump consistent hashing
# spreads the keys evenly (RabbitMQ 3.10's plugin: ``weight`` buckets per binding).
LANE_WEIGHT: Final = "1"
DEFAULT_LANES: Final = 8
MAX_LANES: Final = 64


# The declarations themselves, as data: `loginwatch setup` declares them and
# deploy/ generates RabbitMQ definitions from them, so the two never disagree.


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, str | int]
    bindings: tuple[tuple[str, str], ...]  # (exchange, routing key)


# Quorum queue members are placed when a queue is declared, and only there: a queue's
# argument cannot change later (`rabbitmq-queues grow` adds members, README). An odd count:
# a majority of 2k members is k + 1, as of 2k + 1, so an even count survives no more lost
# nodes than one fewer and costs a replica more. Past 5 every message waits on more
# replicas without the fleet needing to survive more than two lost nodes at once.
MAX_MEMBERS: Final = 5


def quorum_members(nodes: int) -> int:
    """The members each queue gets on a cluster of ``nodes`` nodes (``[broker] urls``):
    every node, up to 5, odd past 2 (2 nodes: 2, which survives no lost node)."""
    members = min(nodes, MAX_MEMBERS)
    return members - 1 if members > 2 and members % 2 == 0 else members


def _members(nodes: int) -> dict[str, str | int]:
    # One node: no argument, as before clusters (an argument a queue was not declared with
    # is a conflict for `setup`), and RabbitMQ's default (up to 3 members) stays in force.
    return {"x-quorum-initial-group-size": quorum_members(nodes)} if nodes > 1 else {}


def _quorum(dead_letter_key: str, nodes: int, **extra: str | int) -> dict[str, str | int]:
    return {
        "x-queue-type": "quorum",
        **_members(nodes),
        "x-dead-letter-exchange": REROUTE_EXCHANGE,
        "x-dead-letter-routing-key": dead_letter_key,
        # At-least-once dead-lettering needs reject-publish overflow. The limits,
        # and the digest queue's drop-head, come from the policies (policy_specs).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        **extra,
    }


def queue_specs(
    retry_delays: tuple[int, ...] = RETRY_DELAYS_S, nodes: int = 1, lanes: int = DEFAULT_LANES
) -> tuple[QueueSpec, ...]:
    """Every queue of the pipeline with its arguments and bindings.

    ``retry_delays`` is ``[worker] retry_delays``: a queue's TTL is fixed when it
    is declared, so each delay has its own queue name. ``nodes``: how many broker
    nodes ``[broker] urls`` names; every queue (work, retry, dead) gets members on
    ``quorum_members(nodes)`` of them. ``lanes``: ``[broker] alert_lanes``.
    """
    # The digest queue has one active consumer at a time (the scheduler holding the
    # store's lease); a standby's consumer takes over when it goes. Adding this argument
    # to an existing queue is a conflict for `setup`: see docs/routing-and-mail.md,
    # "Upgrading a digest queue".
    work_arguments = _quorum(DEAD_QUEUE, nodes, **{"x-delivery-limit": DELIVERY_LIMIT})
    # The shared alerts queue takes old hooks' one-word keys, and every parked alert
    # returns to it from its retry queue.
    shared = QueueSpec(ALERTS_QUEUE, work_arguments,
                       ((EXCHANGE, LEGACY_KEY), (REROUTE_EXCHANGE, ALERTS_QUEUE)))  # fmt: skip
    digest = QueueSpec(
        DIGEST_QUEUE,
        {**work_arguments, "x-single-active-consumer": True},
        ((EXCHANGE, BINDING_KEY), (REROUTE_EXCHANGE, DIGEST_QUEUE)),
    )
    # Each lane is bound to the hash exchange with one bucket, and by its name to the
    # reroute exchange (the lane probes, consumer/alerts/lanes.py).
    lane_specs = [
        QueueSpec(lane_queue(i), work_arguments,
                  ((LANES_EXCHANGE, LANE_WEIGHT), (REROUTE_EXCHANGE, lane_queue(i))))
        for i in range(lanes)
    ]  # fmt: skip
    # A parked alert waits out its delay at the head of its retry queue, then
    # dead-letters back to the shared alerts queue.
    retries = [
        QueueSpec(
            retry_queue(delay),
            _quorum(ALERTS_QUEUE, nodes, **{"x-message-ttl": delay * 1000}),
            ((REROUTE_EXCHANGE, retry_queue(delay)),),
        )
        for delay in retry_delays
    ]
    dead_arguments = {"x-queue-type": "quorum", **_members(nodes)}
    dead = QueueSpec(DEAD_QUEUE, dead_arguments, ((REROUTE_EXCHANGE, DEAD_QUEUE),))
    return (shared, digest, *lane_specs, *retries, dead)


# Queue limits live in RabbitMQ policies, not in queue arguments: arguments are fixed
# when a queue is declared, so an existing install could never get them, while
# `loginwatch setup` (re)applies a policy to live queues. One policy per queue role,
# because RabbitMQ applies only one (the highest priority) to a queue.
#
# What a queue does at its limit decides whether a stalled consumer can stop the
# alerts. Both work queues bind `#`, and a publish routed to two queues is nacked
# when either refuses it: with `reject-publish` on a full digest queue every host's
# publish would fail, and its alert with it. So the digest queue (and the dead
# queue) drop their oldest (`drop-head`; the digest's go to the dead queue, reason
# maxlen), and only the alerts and retry queues refuse (`reject-publish`): then the
# hosts keep the events in their spools until a worker takes alerts again. A policy's
# overflow wins over the `x-overflow` argument of a quorum queue; with drop-head the
# digest queue dead-letters at-most-once (RabbitMQ says so in its log).
POLICY_PRIORITY: Final = 10
POLICY_PREFIX: Final = "loginwatch-"


@dataclass(frozen=True)
class PolicySpec:
    name: str
    pattern: str  # a regex over queue names
    definition: dict[str, str | int]


def _exact(name: str) -> str:
    return "^" + name.replace(".", r"\.") + "$"


def policy_specs(max_length: int, max_bytes: int) -> tuple[PolicySpec, ...]:
    """The limits of every queue (``[broker] queue_max_length``, ``queue_max_bytes``)."""
    limits: dict[str, str | int] = {"max-length": max_length, "max-length-bytes": max_bytes}
    refuse = {**limits, "overflow": "reject-publish"}
    drop_oldest = {**limits, "overflow": "drop-head"}
    work = {"delivery-limit": DELIVERY_LIMIT}
    # The lanes are alerts queues too: the same limit each, so a flooded lane refuses its
    # own publishers only.
    alerts = "^" + ALERTS_QUEUE.replace(".", r"\.") + r"(\.\d+)?$"
    return (
        PolicySpec(POLICY_PREFIX + "alerts", alerts, {**refuse, **work}),
        PolicySpec(POLICY_PREFIX + "digest", _exact(DIGEST_QUEUE), {**drop_oldest, **work}),
        PolicySpec(POLICY_PREFIX + "retry", r"^loginwatch\.retry\.\d+s$", refuse),
        PolicySpec(POLICY_PREFIX + "dead", _exact(DEAD_QUEUE), drop_oldest),
    )


# Exchanges: (name, type). All durable.
EXCHANGES: Final = (
    (EXCHANGE, EXCHANGE_TYPE),
    (REROUTE_EXCHANGE, "direct"),
    (LANES_EXCHANGE, LANES_EXCHANGE_TYPE),
)
# Exchange-to-exchange bindings: (destination, source, key).
EXCHANGE_BINDINGS: Final = tuple(
    (LANES_EXCHANGE, EXCHANGE, type_binding(kind)) for kind in ALERT_TYPES
)
# Bindings an earlier release made and this one does not want: (source, queue, key).
# `loginwatch setup` unbinds them (unbinding what is not there changes nothing).
RETIRED_BINDINGS: Final = (
    # Before lanes the shared queue took everything; now only old hooks' one-word keys.
    (EXCHANGE, ALERTS_QUEUE, BINDING_KEY),
)

# What a host's broker user may do: publish to the events exchange, nothing else.
HOST_PERMISSIONS: Final = {
    "configure": "^$",
    "write": f"^{EXCHANGE.replace('.', r'[.]')}$",
    "read": "^$",
}


def _literal(text: str) -> str:
    """``text`` as a regex that matches only itself: every character but a letter or digit
    escaped (RabbitMQ's ``{username}`` is put in raw, so a dot in a host name would match
    any character: ``host-web1.example.org`` could write as ``host-web1Xexample.org``)."""
    return "".join(ch if ch.isascii() and ch.isalnum() else "\\" + ch for ch in text)


def topic_write_pattern(user: str, *, old_hooks: bool = False) -> str:
    """The routing keys broker user ``user`` may publish to the events exchange with: its
    own name, a dot and one message-type word. ``old_hooks``: one-word keys too (the
    event's kind, as hooks from before lanes send), which reach only the shared queue."""
    own = rf"{_literal(user)}\.[a-z]+"
    return f"^({own}|[a-z]+)$" if old_hooks else f"^{own}$"


def allows_old_hooks(pattern: str) -> bool:
    """Whether a topic write pattern (``topic_write_pattern``) admits one-word keys."""
    return pattern.endswith("|[a-z]+)$")


def routing_key_fits(user: str) -> bool:
    """Whether ``user``'s longest routing key fits AMQP's limit."""
    return len(f"{user}.{max(MESSAGE_TYPES, key=len)}".encode()) <= MAX_ROUTING_KEY


# One broker user per host: `loginwatch host add NAME` creates `host-NAME`, the
# hook publishes with user_id = that user (the broker refuses any other), and the
# worker accepts an event naming host NAME only from `host-NAME`.
HOST_USER_PREFIX: Final = "host-"
# Host names as DNS labels joined by dots: also safe as a broker user name, a
# file name (the password file) and a routing-key-free header value.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME_PATTERN: Final = rf"^{_LABEL}(\.{_LABEL})*$"


def host_user(name: str) -> str:
    """The broker user that speaks for host ``name``: ``host-NAME``."""
    return f"{HOST_USER_PREFIX}{name}"


def user_host(user: str) -> str | None:
    """The host name a ``host-NAME`` broker user speaks for, else None."""
    if not user.startswith(HOST_USER_PREFIX) or len(user) == len(HOST_USER_PREFIX):
        return None
    return user[len(HOST_USER_PREFIX) :]
