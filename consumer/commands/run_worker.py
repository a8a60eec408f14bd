"""``loginwatch worker``: run the alert pipeline until SIGTERM."""

from __future__ import annotations

import argparse
import os

from consumer.alerts.worker import Worker
from consumer.commands._common import add_config_argument, config_of
from consumer.core import metrics, metrics_server


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="consume the alerts queue and mail alerts (runs until SIGTERM)",
        description=(
            "Consume loginwatch.alerts: decode, enrich, decide, render and mail each event."
            " Logs one line per decision with the event id and the reason. A failed delivery"
            " is parked in the retry queues, a poison or undeliverable one goes to the dead"
            " queue (see loginwatch dead list). Run several for more throughput. SIGTERM"
            " finishes the delivery in flight, then exits."
        ),
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)
    metrics_server.start(config.metrics, os.environ)  # never raises: a warning at most
    return Worker(config, on_settle=lambda settled: metrics.settled(settled.verdict.value)).run()
