"""``loginwatch status``: per queue the messages ready, the deliveries unacked, the consumers,
and for each alerts queue (the shared one and every lane) how long its oldest alert waits.

A passive ``queue.declare`` (all AMQP offers) counts only ready messages: deliveries a
consumer holds and never acks are invisible to it, so a stuck consumer looked healthy
(issue 10). The unacked counts come from the broker itself (``rabbitmqctl list_queues``,
on the broker machine); the age of the oldest unacked delivery only the consumer holding
it knows, so it comes from the metrics of the consumers on this machine: the sockets they
serve in their own runtime directories (``consumer/core/metrics_socket.py``), never a TCP
port, which any local user could have taken first to show figures of their own. So does
the age of the oldest alert in each lane, which the workers measure with probes of their
own (consumer/alerts/lanes.py): a flooded lane shows its wait here.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from consumer.broker import rabbitmqctl
from consumer.broker.delivery import QueueState
from consumer.commands._common import add_config_argument, config_of, open_broker
from consumer.core import metrics_socket
from consumer.core.display import visible
from consumer.detect.quiet import quiet
from consumer.store import HostRow, open_store
from schemas import topology
from schemas.config import Config, store_password
from schemas.errors import BrokerError, ConfigError, QueueMissing, StoreError
from schemas.nodes import broker_vhost

NAMED_STRAGGLERS = 10  # hosts named per older version; the rest counted
_OLDEST = re.compile(r'^loginwatch_oldest_unacked_seconds\{queue="([^"]+)"\} ([0-9.e+]+)$', re.M)
_LANE_WAIT = re.compile(r'^loginwatch_lane_wait_seconds\{queue="([^"]+)"\} ([0-9.e+]+)$', re.M)
_LANE = re.compile(r"loginwatch\.alerts\.\d+")
_QUEUES = frozenset({topology.ALERTS_QUEUE, topology.DIGEST_QUEUE})
SLOW_LANE_S = 60  # a lane whose oldest alert waited longer gets a note


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show queue depths, unacked deliveries, consumers and the dead-letter count",
        description=(
            "Show, for every loginwatch queue, the messages ready, the deliveries handed to a"
            " consumer and not yet acked (from rabbitmqctl, on the broker machine), the"
            " consumers attached, and the age of the oldest unacked delivery (from the metrics"
            " sockets of this machine's consumers, in [metrics] runtime_dir), then which"
            " host-side versions reported in the last day, naming the hosts of older versions"
            " (from the store). Nothing is"
            " changed. Exits 1 when a queue is missing; says so when the dead queue holds"
            " messages (see loginwatch dead list) or when no worker consumes the alerts queue."
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


def oldest_unacked(runtime_dir: str) -> tuple[dict[str, float], list[str]]:
    """The oldest unacked delivery's age per queue, as this machine's consumers report it
    on their metrics sockets; and a line for each socket that was not believed or asked."""
    oldest, _, notes = consumer_figures(runtime_dir)
    return oldest, notes


def consumer_figures(runtime_dir: str) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Per queue, from this machine's consumers' metrics sockets: the oldest unacked
    delivery's age, the oldest alert's wait (each lane's, the most any worker saw); and a
    line for each socket that was not believed or asked."""
    found, notes = metrics_socket.sockets(runtime_dir)
    oldest: dict[str, float] = {}
    waits: dict[str, float] = {}
    for path in found:
        try:
            text = metrics_socket.scrape(path)
        except (OSError, ValueError) as exc:
            notes.append(f"cannot read {path!a}: {exc}")
            continue
        for pattern, into in ((_OLDEST, oldest), (_LANE_WAIT, waits)):
            for queue, value in pattern.findall(text):
                if queue in _QUEUES or _LANE.fullmatch(queue):  # ours: nothing else is printed
                    into[queue] = max(into.get(queue, 0.0), float(value))
    return oldest, waits, notes


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    states: dict[str, QueueState | None] = {}
    specs = topology.queue_specs(config.worker.retry_delays, lanes=config.broker.alert_lanes)
    with open_broker(config) as broker:
        for spec in specs:
            try:
                states[spec.name] = broker.queue_state(spec.name)
            except QueueMissing:
                states[spec.name] = None
    unacked = unacked_counts(config)
    oldest, waits, sockets = consumer_figures(config.metrics.runtime_dir)
    print(f"{'queue':<28} {'ready':>8} {'unacked':>8} {'consumers':>9} {'oldest unacked':>15}"
          f" {'oldest alert':>13}")  # fmt: skip
    for name, state in states.items():
        if state is None:
            print(f"{name:<28} {'missing (run loginwatch setup)':>18}")
            continue
        held = "?" if unacked is None else str(unacked.get(name, 0))
        age = _age(oldest.get(name)) if held not in ("0", "?") or name in oldest else "-"
        print(f"{name:<28} {state.messages:>8} {held:>8} {state.consumers:>9} {age:>15}"
              f" {_age(waits.get(name)):>13}")  # fmt: skip
    for line in [*_notes(states, unacked, waits), *sockets]:
        print(line)
    for line in version_lines(config, datetime.now(UTC)):
        print(line)
    for line in quiet_lines(config, datetime.now(UTC)):
        print(line)
    return 1 if None in states.values() else 0


def quiet_lines(config: Config, now: datetime) -> list[str]:
    """The hosts that stopped reporting ([hosts] quiet_after), gone or stopped, oldest
    silence first (``consumer/detect/quiet.py``)."""
    after = config.hosts.quiet_after.seconds
    try:
        with open_store(config.store.url, password=store_password(config.store)) as store:
            states = store.quiet_hosts(now - timedelta(seconds=after))
    except (StoreError, ConfigError) as exc:
        return [f"quiet hosts: unknown ({exc})"]
    found = quiet(states, now, after)
    if not found:
        return []
    lines = [
        f"hosts that stopped reporting (no event, no heartbeat for {config.hosts.quiet_after}):"
    ]
    for host in found[:NAMED_STRAGGLERS]:
        since = host.since.isoformat(timespec="minutes")
        lines.append(f"  {visible(host.name, 64):<28} {host.how} since {since}")
    if len(found) > NAMED_STRAGGLERS:
        lines.append(f"  … and {len(found) - NAMED_STRAGGLERS} more")
    return lines


def version_lines(config: Config, now: datetime) -> list[str]:
    """Which host-side versions reported in the day before ``now``, newest first, with the
    hosts of every older one named (the store's hosts table)."""
    try:
        with open_store(config.store.url, password=store_password(config.store)) as store:
            rows = store.hosts_reported(now - timedelta(days=1))
    except (StoreError, ConfigError) as exc:
        return [f"host versions: unknown ({exc})"]
    if not rows:
        return ["host versions: no host reported in the last day"]
    lines = ["host-side versions that reported in the last day:"]
    grouped = _by_version(rows)
    for rank, version in enumerate(sorted(grouped, key=_version_key, reverse=True)):
        names = grouped[version]
        shown = ""
        if rank:  # the stragglers of an upgrade, by name
            named = ", ".join(visible(name, 64) for name in names[:NAMED_STRAGGLERS])
            more = len(names) - NAMED_STRAGGLERS
            shown = f": {named}" + (f" and {more} more" if more > 0 else "")
        lines.append(f"  {visible(version, 32) or '(none)':<12} {len(names):>5} host(s){shown}")
    return lines


def _by_version(rows: list[HostRow]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for row in rows:
        grouped.setdefault(row.version, []).append(row.name)
    return grouped


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """``0.10.0`` after ``0.9.1``: numeric parts compared as numbers, others as text."""
    return tuple(
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.+-]", version)
    )


def _notes(
    states: dict[str, QueueState | None], unacked: dict[str, int] | None, waits: dict[str, float]
) -> list[str]:
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
    for name, waited in sorted(waits.items()):
        if waited > SLOW_LANE_S and name in states:
            notes.append(f"{name}: its oldest alert has waited {_age(waited)} (a flooding"
                         " host? the worker's log names whom it sheds)")  # fmt: skip
    return notes
