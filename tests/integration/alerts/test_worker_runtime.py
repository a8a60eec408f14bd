"""The worker's runtime on the real broker: setup, poison messages, the dead queue."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import msgspec
import pytest

from schemas import topology
from schemas.event import encode
from tests.support.factories import T0, event
from tests.support.services import Vhost
from tests.support.worker_helpers import (
    depth,
    loginwatch,
    publish,
    running_worker,
    take_all,
    wait_depth,
    write_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def config(vh: Vhost, tmp_path: Path) -> Path:
    path = write_config(tmp_path / "loginwatch.toml", vh)
    result = loginwatch("setup", "--config", str(path))
    assert result.returncode == 0, result.stderr
    return path


def test_setup_twice_on_a_live_system_keeps_every_message(vh: Vhost, config: Path) -> None:
    for n in range(3):
        publish(vh, encode(event(user=f"u{n}")))
    again = loginwatch("setup", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "loginwatch.retry.1s" in again.stdout
    assert depth(vh, topology.ALERTS_QUEUE) == 3
    assert depth(vh, topology.DIGEST_QUEUE) == 3
    status = loginwatch("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert any(
        line.split()[:4] == [topology.ALERTS_QUEUE, "3", "0", "0"]  # ready, unacked, consumers
        for line in status.stdout.splitlines()
    )


def test_setup_names_a_queue_with_conflicting_arguments(vh: Vhost, tmp_path: Path) -> None:
    path = write_config(tmp_path / "loginwatch.toml", vh)
    from tests.support.worker_helpers import connect

    with connect(vh) as connection:  # a classic queue where a quorum one belongs
        connection.channel().queue_declare(topology.DEAD_QUEUE, durable=True)
    result = loginwatch("setup", "--config", str(path))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"loginwatch setup: queue {topology.DEAD_QUEUE} exists with other")
    assert "x-queue-type" in line


def test_status_without_setup_says_what_to_do(vh: Vhost, tmp_path: Path) -> None:
    path = write_config(tmp_path / "loginwatch.toml", vh)
    result = loginwatch("status", "--config", str(path))
    assert result.returncode == 1
    assert "missing (run loginwatch setup)" in result.stdout


POISON = {
    "random bytes": os.urandom(64),
    "truncated msgpack": encode(event())[:-7],
    "wrong types": msgspec.msgpack.encode([1, "not an id", 3, 4]),
    "a user of 1 KiB": msgspec.msgpack.encode(
        [1, os.urandom(16), T0, "web1", "sshd", 4, 1, "a" * 1024]
    ),
    "empty body": b"",
    "not even the tag": struct.pack(">I", 7),
}


def test_poison_goes_to_the_dead_queue_with_a_reason_and_the_worker_lives(
    vh: Vhost, config: Path, tmp_path: Path
) -> None:
    with running_worker(config, tmp_path / "worker.log") as worker:
        for name, body in POISON.items():
            publish(vh, body, message_id=name)
        assert wait_depth(vh, topology.DEAD_QUEUE, len(POISON)) == len(POISON)
        worker.wait_for("dead-lettered: undecodable event", count=len(POISON))
        assert worker.proc.poll() is None
    assert worker.proc.returncode == 0
    assert depth(vh, topology.ALERTS_QUEUE) == 0

    listing = loginwatch("dead", "list", "--config", str(config))
    assert listing.returncode == 0, listing.stderr
    assert f"{len(POISON)} dead message(s)" in listing.stdout
    assert listing.stdout.count("undecodable event") == len(POISON)
    # Listing took nothing away.
    assert depth(vh, topology.DEAD_QUEUE) == len(POISON)
    status = loginwatch("status", "--config", str(config))
    assert f"{len(POISON)} message(s) in the dead queue: loginwatch dead list" in status.stdout

    # An undecodable body's id is its SHA-256 (hex), never the message id its sender chose.
    body_id = hashlib.sha256(POISON["random bytes"]).hexdigest()[:32]
    assert body_id in listing.stdout and "random bytes" not in listing.stdout
    replayed = loginwatch("dead", "replay", "--id", body_id[:8], "--config", str(config))
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {body_id} to loginwatch.alerts" in replayed.stdout
    assert depth(vh, topology.ALERTS_QUEUE) == 1
    assert depth(vh, topology.DEAD_QUEUE) == len(POISON) - 1

    dead = {m.body: m.headers for m in take_all(vh, topology.DEAD_QUEUE)}
    for name, body in POISON.items():
        if name != "random bytes":
            reason = dead[body][topology.HEADER_REASON]
            assert reason.startswith("undecodable event:"), (name, reason)
            assert dead[body][topology.HEADER_ORIGIN] == topology.ALERTS_QUEUE


def test_replay_of_an_unknown_id_fails_with_one_line(config: Path) -> None:
    result = loginwatch("dead", "replay", "--id", "feedfacecafe", "--config", str(config))
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[0] == (
        "loginwatch dead replay: not in the dead queue: feedfacecafe"
    )


def test_events_from_a_user_that_may_not_speak_for_the_host_are_dead(
    vh: Vhost, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "loginwatch.toml", vh, extra="")
    text = path.read_text().replace("[worker]\n", "[worker]\nrequire_user_id = true\n")
    path.write_text(text)
    assert loginwatch("setup", "--config", str(path)).returncode == 0
    with running_worker(path, tmp_path / "worker.log") as worker:
        publish(vh, encode(event(host="web1")), user_id="guest")
        publish(vh, encode(event(host="web2")), user_id=None)
        assert wait_depth(vh, topology.DEAD_QUEUE, 2) == 2
        worker.wait_for("dead-lettered", count=2)
    reasons = sorted(m.headers[topology.HEADER_REASON] for m in take_all(vh, topology.DEAD_QUEUE))
    assert reasons == [
        "no user_id: host events must carry their broker user",
        'user_id "guest" may not speak for host "web1"',
    ]
