"""``loginwatch status``: per queue the messages ready, the deliveries unacked, the consumers.

A passive ``queue.declare`` (all AMQP offers) counts only ready messages: deliveries a
consumer holds and never acks are invisible to it, so a stuck consumer looked healthy
(issue 10). The unacked counts come from the broker itself (``rabbitmqctl list_queues``,
on the broker machine); the age of the oldest unacked delivery only the consumer holding
it knows, so it comes from the ``/metrics`` of the consumers on this machine (``[metrics]
listen``: the digest at its port, ``loginwatch-worker@N`` at port + N).
"""

from __future__ import annotations

import argparse
import re
import urllib.error
import urllib.request

from consumer import rabbitmqctl
from consumer.cli import add_config_argument
from consumer.commands._common import config_of, open_broker
from consumer.delivery import QueueState
from consumer.metrics import parse_listen
from schemas import topology
from schemas.config import Config, broker_vhost
from schemas.errors import BrokerError, ConfigError, QueueMissing

LOCAL_INSTANCES = 9  # the digest (port + 0) and loginwatch-worker@1..8 (port + N)
_OLDEST = re.compile(r'^loginwatch_oldest_unacked_seconds\{queue="([^"]+)"\} (\S+)$', re.M)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show queue depths, unacked deliveries, consumers and the dead-letter count",
        description=(
            "Show, for every loginwatch queue, the messages ready, the deliveries handed to a"
            " consumer and not yet acked (from rabbitmqctl, on the broker machine), the"
            " consumers attached, and the age of the oldest unacked delivery (from the"
            " /metrics of this machine's consumers). Nothing is changed. Exits 1 when a queue"
            " is missing; says so when the dead queue holds messages (see loginwatch dead"
            " list) or when no worker consumes the alerts queue."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def unacked_counts(config: Config) -> dict[str, int] | None:
    """Unacked deliveries per queue of the config's vhost, or None when rabbitmqctl cannot
    tell (not the broker machine, not root)."""
    vhost = broker_vhost(config.broker)
    try:
        rows = rabbitmqctl.run_json("list_queues", "-p", vhost, "name", "messages_unacknowledged")
    except BrokerError:
        return None
    return {str(r.get("name")): int(r.get("messages_unacknowledged") or 0) for r in rows}


def oldest_unacked(listen: str | None, instances: int = LOCAL_INSTANCES) -> dict[str, float]:
    """The oldest unacked delivery's age per queue, as this machine's consumers report it."""
    if not listen:
        return {}
    try:
        host, port = parse_listen(listen)
    except ConfigError:
        return {}
    host = f"[{host}]" if ":" in host else host
    oldest: dict[str, float] = {}
    for offset in range(instances if port else 0):
        try:
            url = f"http://{host}:{port + offset}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read(1 << 20).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError):
            continue  # nothing serves there
        for queue, value in _OLDEST.findall(text):
            oldest[queue] = max(oldest.get(queue, 0.0), float(value))
    return oldest


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    states: dict[str, QueueState | None] = {}
    with open_broker(config) as broker:
        for spec in topology.queue_specs(config.worker.retry_delays):
            try:
                states[spec.name] = broker.queue_state(spec.name)
            except QueueMissing:
                states[spec.name] = None
    unacked = unacked_counts(config)
    oldest = oldest_unacked(config.metrics.listen)
    print(f"{'queue':<28} {'ready':>8} {'unacked':>8} {'consumers':>9} {'oldest unacked':>15}")
    for name, state in states.items():
        if state is None:
            print(f"{name:<28} {'missing (run loginwatch setup)':>18}")
            continue
        held = "?" if unacked is None else str(unacked.get(name, 0))
        age = _age(oldest.get(name)) if held not in ("0", "?") or name in oldest else "-"
        print(f"{name:<28} {state.messages:>8} {held:>8} {state.consumers:>9} {age:>15}")
    for line in _notes(states, unacked):
        print(line)
    return 1 if None in states.values() else 0


def _notes(states: dict[str, QueueState | None], unacked: dict[str, int] | None) -> list[str]:
    notes = []
    names = (topology.ALERTS_QUEUE, topology.DIGEST_QUEUE, topology.DEAD_QUEUE)
    alerts, digest, dead = (states.get(name) for name in names)
    if alerts is not None and alerts.consumers == 0:
        notes.append(f"no worker runs: nothing consumes {topology.ALERTS_QUEUE}, so no alert"
                     " is mailed (start loginwatch worker)")  # fmt: skip
    if digest is not None and digest.consumers == 0:
        notes.append(f"no digest scheduler runs: nothing consumes {topology.DIGEST_QUEUE}"
                     " (start loginwatch digest)")  # fmt: skip
    if unacked is None:
        notes.append("unacked: unknown here (rabbitmqctl answers on the broker machine, as root)")
    if dead is not None and dead.messages:
        notes.append(f"{dead.messages} message(s) in the dead queue: loginwatch dead list")
    return notes
