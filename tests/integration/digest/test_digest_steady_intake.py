"""A running ``loginwatch digest`` (no ``--once``, no kills) takes batch after batch on one
connection: every event is stored within seconds, and nothing is left unacked.

The scheduler once registered ``self.pending.append`` as its consume callback and then
rebound ``self.pending`` in ``flush()``: every delivery after the first batch went into a
list nothing read, unacked until the connection closed (issue 10). The broker's own counts
(``rabbitmqctl list_queues``) show that, a passive declare does not.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer.broker.connection import Broker
from schemas import topology
from schemas.config import parse_config
from schemas.event import encode
from tests.support.digest_support import OPS, config_text, login, totals
from tests.support.queue_counts import counts, wait_until
from tests.support.services import Vhost, fresh_vhost
from tests.support.worker_helpers import ROOT, loginwatch, publish

pytestmark = pytest.mark.integration

BATCHES, PER_BATCH = 3, 3
WITHIN_S = 15.0  # "within seconds", with room for a loaded 2-core machine


@pytest.fixture
def vhost_d() -> Iterator[Vhost]:
    with fresh_vhost("loginwatch-d") as made:
        with Broker(parse_config(f'[broker]\nurl = "{made.url()}"').broker) as broker:
            broker.declare(topology.queue_specs())
        yield made


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as connection:
        try:
            return int(connection.execute("SELECT COUNT(*) FROM digest_event").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_a_running_scheduler_stores_every_batch_and_holds_nothing_unacked(
    vhost_d: Vhost, tmp_path: Path
) -> None:
    db = tmp_path / "lw.db"
    config = tmp_path / "loginwatch.toml"
    config.write_text(config_text(str(db), amqp_url=vhost_d.url()))
    log = (tmp_path / "digest.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "consumer.cli", "digest", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    seen: list[tuple[int, int, int]] = []
    try:
        assert wait_until(
            lambda: counts(vhost_d.name, topology.DIGEST_QUEUE).consumers == 1, WITHIN_S
        )
        now = datetime.now(UTC)
        for batch in range(BATCHES):
            for n in range(PER_BATCH):
                e = login(now - timedelta(minutes=1), "web-1", f"user{batch}-{n}")
                publish(vhost_d, encode(e), routing_key=e.kind, message_id=e.id_hex,
                        user_id="guest")  # fmt: skip
            want = (batch + 1) * PER_BATCH

            def caught_up(want: int = want) -> bool:
                state = counts(vhost_d.name, topology.DIGEST_QUEUE)
                seen.append((stored(db), state.ready, state.unacked))
                return seen[-1] == (want, 0, 0)

            assert wait_until(caught_up, WITHIN_S), (
                f"batch {batch + 1}: want {want} stored, nothing ready or unacked; "
                f"last seen (stored, ready, unacked) = {seen[-1]}"
            )
        assert daemon.poll() is None  # one daemon, one connection, all along
        preview = loginwatch("digest", "--preview", "--to", OPS, "--config", str(config))
        assert preview.returncode == 0, preview.stderr
        assert totals(preview.stdout)["events"] == str(BATCHES * PER_BATCH)
    finally:
        daemon.terminate()
        daemon.wait(20)
        log.close()
    text = (tmp_path / "digest.log").read_text()
    assert text.count("consuming loginwatch.digest") == 1, text  # never reconnected
