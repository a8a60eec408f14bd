"""RabbitMQ names, defined once for the hook, the worker, setup and deploy/.

Routing keys are the event's kind (``login``, ``logout``, ``failure`` …); the
alerts and digest queues both bind ``#``: the worker decides what is mailed now,
the digest scheduler stores everything for the periodic summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

EXCHANGE: Final = "loginwatch.events"
EXCHANGE_TYPE: Final = "topic"

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


def routing_key(kind: str) -> str:
    return kind


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
    retry_delays: tuple[int, ...] = RETRY_DELAYS_S, nodes: int = 1
) -> tuple[QueueSpec, ...]:
    """Every queue of the pipeline with its arguments and bindings.

    ``retry_delays`` is ``[worker] retry_delays``: a queue's TTL is fixed when it
    is declared, so each delay has its own queue name. ``nodes``: how many broker
    nodes ``[broker] urls`` names; every queue (work, retry, dead) gets members on
    ``quorum_members(nodes)`` of them.
    """
    # The digest queue has one active consumer at a time (the scheduler holding the
    # store's lease); a standby's consumer takes over when it goes. Adding this argument
    # to an existing queue is a conflict for `setup`: see the README's upgrade note.
    single = {DIGEST_QUEUE: {"x-single-active-consumer": True}}
    work = [
        QueueSpec(
            name,
            _quorum(
                DEAD_QUEUE, nodes, **{"x-delivery-limit": DELIVERY_LIMIT}, **single.get(name, {})
            ),
            ((EXCHANGE, BINDING_KEY), (REROUTE_EXCHANGE, name)),
        )
        for name in (ALERTS_QUEUE, DIGEST_QUEUE)
    ]
    # A parked alert waits out its delay at the head of its retry queue, then
    # dead-letters back to the alerts queue.
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
    return (*work, *retries, dead)


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
    return (
        PolicySpec(POLICY_PREFIX + "alerts", _exact(ALERTS_QUEUE), {**refuse, **work}),
        PolicySpec(POLICY_PREFIX + "digest", _exact(DIGEST_QUEUE), {**drop_oldest, **work}),
        PolicySpec(POLICY_PREFIX + "retry", r"^loginwatch\.retry\.\d+s$", refuse),
        PolicySpec(POLICY_PREFIX + "dead", _exact(DEAD_QUEUE), drop_oldest),
    )


# Exchanges: (name, type). Both durable.
EXCHANGES: Final = ((EXCHANGE, EXCHANGE_TYPE), (REROUTE_EXCHANGE, "direct"))

# What a host's broker user may do: publish to the events exchange, nothing else.
HOST_PERMISSIONS: Final = {
    "configure": "^$",
    "write": f"^{EXCHANGE.replace('.', r'[.]')}$",
    "read": "^$",
}

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
