"""The real hook against the real RabbitMQ: delivered, spooled, flushed, never blocking."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from producer.hook import FOREGROUND_BOUND_S
from schemas import topology
from schemas.event import Outcome
from tests.support.hookrun import (
    ED25519_FINGERPRINT,
    HOOK,
    PAM_ENV,
    SilentListener,
    TapQueue,
    run_hook,
    spooled,
    wait_for,
    write_config,
)
from tests.support.services import Vhost

pytestmark = pytest.mark.integration

# The hook's foreground bound plus generous slack for a loaded 2-core machine:
# a hook that blocks on the broker would hit the publisher's timeouts instead.
HOOK_BOUND_S = FOREGROUND_BOUND_S + 3


@pytest.fixture
def tap(vhost: Vhost) -> Iterator[TapQueue]:
    queue = TapQueue(vhost.url())
    yield queue
    queue.close()


def flush(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOK, "--config", str(config), "flush"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_login_reaches_the_broker_as_one_confirmed_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    config = write_config(tmp_path, vhost.url())
    run = run_hook(config, timeout=HOOK_BOUND_S)
    assert run.returncode == 0, run.stderr
    [(props, event)] = tap.take(1)
    assert (event.host, event.user, event.client_ip) == ("web-01", "alice", "192.0.2.10")
    assert event.fingerprint == ED25519_FINGERPRINT
    assert event.outcome is Outcome.SUCCESS
    assert props.message_id == event.id_hex
    assert props.user_id == "guest"
    assert props.delivery_mode == 2
    assert props.content_type == topology.CONTENT_TYPE
    assert wait_for(lambda: not spooled(tmp_path)), "confirmed events leave the spool"
    assert tap.take(1, timeout=0.5) == [], "exactly one message per login"


def test_broker_down_keeps_the_event_until_flush_delivers_it_once(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    closed_port = _unused_port()
    down = write_config(tmp_path, vhost.url(port=closed_port))
    run = run_hook(down, timeout=HOOK_BOUND_S)
    assert run.returncode == 0
    assert wait_for(lambda: len(spooled(tmp_path)) == 1)
    result = flush(down)
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert len(spooled(tmp_path)) == 1, "a failed flush keeps the event"

    up = write_config(tmp_path, vhost.url())  # same spool, the broker is back
    result = flush(up)
    assert result.returncode == 0, result.stderr
    assert "published 1, left 0" in result.stdout
    [(_, event)] = tap.take(1)
    assert event.user == "alice"
    assert flush(up).stdout.startswith("published 0, left 0")
    assert tap.take(1, timeout=0.5) == []


def test_a_broker_that_never_answers_does_not_hold_the_login(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    with SilentListener() as port:
        config = write_config(tmp_path, vhost.url(port=port))
        run = run_hook(config, timeout=HOOK_BOUND_S)
        assert run.returncode == 0
        assert len(spooled(tmp_path)) == 1
        # flush waits for the hook's detached publisher, which gives up on its own
        # (connect_timeout = 2 s), then tries once more itself.
        result = flush(config)
        assert result.returncode == 1
        assert "cannot connect: Timeout during AMQP handshake" in result.stderr
        assert "Traceback" not in result.stderr
    assert len(spooled(tmp_path)) == 1
    assert flush(write_config(tmp_path, vhost.url())).returncode == 0
    assert len(tap.take(1)) == 1


def test_spool_overflow_is_counted_and_reported_by_the_next_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    down = write_config(tmp_path, vhost.url(port=_unused_port()), "max_events = 2")
    for _ in range(3):
        assert run_hook(down, timeout=HOOK_BOUND_S).returncode == 0
    assert len(spooled(tmp_path)) == 2
    assert (tmp_path / "spool" / "dropped").read_text().strip().lstrip("0") == "1"

    assert flush(write_config(tmp_path, vhost.url(), "max_events = 2")).returncode == 0
    events = [event for _, event in tap.take(2)]
    assert [e.dropped for e in events] == [1, 0]
    assert int((tmp_path / "spool" / "dropped").read_text()) == 0


def test_hostile_values_travel_safely(tmp_path: Path, vhost: Vhost, tap: TapQueue) -> None:
    env: dict[str, str | bytes] = dict(PAM_ENV)
    env["PAM_USER"] = (
        b"\xff\xfeevil\r\nBcc: x@y" + b"A" * 100_000
    )  # execve caps one string at 128 KiB
    env["PAM_RHOST"] = "{{ 7*7 }}<script>"
    env["SSH_CONNECTION"] = "1.2.3.4 notaport 5.6.7.8 22"
    run = run_hook(write_config(tmp_path, vhost.url()), env=env, timeout=HOOK_BOUND_S)
    assert run.returncode == 0
    [(_, event)] = tap.take(1)
    assert event.user.startswith("\\xff\\xfeevil\r\nBcc: x@y")
    assert len(event.user) == 256
    assert event.escaped == ("user",) and event.truncated == ("user",)
    assert event.rhost == "{{ 7*7 }}<script>"
    assert (event.client_ip, event.client_port) == ("", 0)


def test_bad_credentials_keep_the_event_and_say_why(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    config = write_config(tmp_path, vhost.url(password="wrong"))
    assert run_hook(config, timeout=HOOK_BOUND_S).returncode == 0
    assert len(spooled(tmp_path)) == 1
    result = flush(config)
    assert result.returncode == 1
    assert "authentication refused" in result.stderr
    assert tap.take(1, timeout=0.5) == []


def test_an_unusable_spool_record_is_set_aside_not_lost(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    config = write_config(tmp_path, vhost.url())
    (tmp_path / "spool").mkdir()
    junk = tmp_path / "spool" / "00000000000000000001-junk.cap"
    junk.write_bytes(b"not a capture")
    run = run_hook(config, timeout=HOOK_BOUND_S)
    assert run.returncode == 0
    assert len(tap.take(1)) == 1, "the good event still goes out"
    assert wait_for(lambda: not spooled(tmp_path))
    assert (tmp_path / "spool" / "bad" / junk.name).read_bytes() == b"not a capture"


def test_the_broker_refuses_a_forged_user_id(vhost: Vhost) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(vhost.url()))
    channel = connection.channel()
    channel.exchange_declare(topology.EXCHANGE, topology.EXCHANGE_TYPE, durable=True)
    channel.confirm_delivery()
    forged = pika.BasicProperties(user_id="host-someone-else")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish(topology.EXCHANGE, "login", b"x", forged)
    assert info.value.reply_code == 406
    assert "user_id property set to 'host-someone-else'" in info.value.reply_text
    connection.close()


def test_full_disk_lets_the_login_proceed_and_counts_the_loss(tmp_path: Path) -> None:
    """A spool on a tiny tmpfs, filled up: the hook exits 0 and counts the drop."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    spool_dir = tmp_path / "spool"
    config = write_config(tmp_path, "amqp://guest:guest@127.0.0.1:1/%2F")
    env = " ".join(f"{k}='{v.strip()}'" for k, v in PAM_ENV.items() if k != "SSH_AUTH_INFO_0")
    script = f"""
        set -e
        mkdir -p {spool_dir}
        # mode 0700: the hook refuses a spool others may write to (tmpfs defaults to 1777).
        mount -t tmpfs -o size=64k,mode=0700 tmpfs {spool_dir}
        printf '%020d\\n' 0 > {spool_dir}/dropped
        dd if=/dev/zero of={spool_dir}/filler bs=4k count=64 2>/dev/null || true
        env -i {env} {HOOK} --config {config}
        echo "rc=$?"
        cat {spool_dir}/dropped
        ls {spool_dir}
    """
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=HOOK_BOUND_S + 10,
        check=False,
    )
    if "mount:" in out.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    assert "rc=0" in out.stdout, out.stderr
    assert "00000000000000000001" in out.stdout
    assert "No space left on device" in out.stderr
    assert ".cap" not in out.stdout


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
