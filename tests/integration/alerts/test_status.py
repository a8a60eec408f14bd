"""``loginwatch status``: what an operator sees of ready, unacked and consumers.

A consumer that takes deliveries and never acks them (the digest scheduler's bug in issue
10) left every ready count at 0: status looked healthy. It must show the unacked
deliveries, the age of the oldest (as the consumers report it on their metrics sockets), and
say when no worker runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from consumer.commands.status import oldest_unacked
from consumer.core import metrics, metrics_server
from schemas import topology
from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.worker_helpers import connect, loginwatch, publish, write_config


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Iterator[Path]:
    """``[metrics] runtime_dir`` with one consumer's socket in it (this process serves it,
    as the digest scheduler would)."""
    base = tmp_path / "run"
    base.mkdir(mode=0o755)
    (base / "digest").mkdir(mode=0o750)
    server = metrics_server.serve_unix(str(base / "digest"))
    yield base
    server.close()


def rows(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines()
            if line.startswith("loginwatch.")}  # fmt: skip


def test_the_oldest_unacked_age_comes_from_the_consumers_metrics(
    runtime_dir: Path, tmp_path: Path
) -> None:
    metrics.holding(topology.DIGEST_QUEUE, 3, 42.0)
    assert oldest_unacked(str(runtime_dir)) == ({topology.DIGEST_QUEUE: 42}, [])
    assert oldest_unacked(str(tmp_path / "none")) == ({}, [])


@pytest.mark.integration
def test_status_shows_deliveries_a_consumer_holds_unacked(
    vh: Vhost, tmp_path: Path, runtime_dir: Path
) -> None:
    config = write_config(tmp_path / "loginwatch.toml", vh,
                          extra=f'\n[metrics]\nruntime_dir = "{runtime_dir}"\n')  # fmt: skip
    assert loginwatch("setup", "--config", str(config)).returncode == 0
    for n in range(3):
        publish(vh, encode(event(user=f"u{n}")), user_id="guest")
    metrics.holding(topology.DIGEST_QUEUE, 3, 125.0)  # what the stuck consumer would report
    with connect(vh) as stuck:  # takes the digest queue's three and never acks them
        channel = stuck.channel()
        channel.basic_qos(prefetch_count=10)
        got: list[int] = []

        def keep(_ch: object, method: pika.spec.Basic.Deliver, *_: object) -> None:
            got.append(method.delivery_tag)

        channel.basic_consume(topology.DIGEST_QUEUE, keep)
        while len(got) < 3:
            stuck.process_data_events(time_limit=1)
        # The broker's per-queue figures refresh every few seconds: ask until they have. A
        # status run that printed no table (seen once in five full runs, under -n 3; its
        # stderr was not kept) is asked again too, and its stderr shown if none succeeds.
        failures: list[str] = []
        for _ in range(30):
            status = loginwatch("status", "--config", str(config))
            shown = rows(status.stdout)
            if topology.DIGEST_QUEUE not in shown:
                failures.append(status.stderr)
            elif shown[topology.DIGEST_QUEUE][1] != "0":
                break
            stuck.process_data_events(time_limit=0.5)
    assert status.returncode == 0, status.stderr
    assert topology.DIGEST_QUEUE in shown, failures
    # ready, unacked, consumers, oldest unacked, oldest alert (no worker: no probe)
    assert shown[topology.DIGEST_QUEUE] == ["0", "3", "1", "2m", "-"]
    assert shown[topology.ALERTS_QUEUE] == ["3", "0", "0", "-", "-"]
    assert shown[topology.lane_queue(0)] == ["0", "0", "0", "-", "-"]
    assert "no worker runs: nothing consumes loginwatch.alerts" in status.stdout


def test_status_help_reads_as_sentences() -> None:
    shown = loginwatch("status", "--help")
    text = " ".join(shown.stdout.split())
    assert "is missing; says so when the dead queue holds messages" in text
    assert ". the dead" not in text
