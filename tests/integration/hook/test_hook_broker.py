"""The real hook against the real RabbitMQ: delivered, spooled, flushed, never blocking."""

from __future__ import annotations

import os
import socket
import subprocess
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
    dropped,
    run_hook,
    spooled,
    wait_for,
    warm_settings,
    write_config,
)
from tests.support.services import AMQP_PORT, Vhost
from tests.support.worker_helpers import FreezableProxy

pytestmark = pytest.mark.integration

# The hook's foreground bound plus generous slack for a loaded 2-core machine:
# a hook that blocks on the broker would hit the publisher's timeouts instead.
HOOK_BOUND_S = FOREGROUND_BOUND_S + 3


def flush(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOK, "--config", str(config), "flush"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_login_reaches_the_broker_as_one_confirmed_event(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    config = write_config(tmp_path, vhost.url())
    run = run_hook(config, timeout=HOOK_BOUND_S, hook=hook)
    assert run.returncode == 0, run.stderr
    assert run.stderr == b"", "the C front-end took the login itself: no handover said"
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


def test_a_login_during_an_outage_goes_out_when_the_broker_is_back(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    """A failed password finds no broker: its publisher holds the lock (the rest of a
    burst forks no publisher that would fail alike) and tries again every second. A login
    meanwhile forks nobody, and goes out as soon as the broker answers, not at the next
    flush timer."""
    port = _unused_port()
    config = write_config(tmp_path, vhost.url(port=port))
    failure = {**PAM_ENV, "PAM_TYPE": "auth", "PAM_USER": "root"}
    assert run_hook(config, env=failure, args=("--outcome", "failure")).returncode == 0
    assert run_hook(config, timeout=HOOK_BOUND_S).returncode == 0
    assert len(spooled(tmp_path)) == 2
    proxy = FreezableProxy(AMQP_PORT, port=port)  # the broker is back
    try:
        events = [event for _, event in tap.take(2, timeout=10)]
    finally:
        proxy.close()
    assert sorted((e.kind, e.user) for e in events) == [("failure", "root"), ("login", "alice")]


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
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    with SilentListener() as port:
        config = write_config(tmp_path, vhost.url(port=port))
        run = run_hook(config, timeout=HOOK_BOUND_S, hook=hook)
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
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    """The C front-end hands a login near the bounds to the Python foreground, which evicts
    and counts: the same records, the same ledger."""
    down = write_config(tmp_path, vhost.url(port=_unused_port()), "max_events = 2")
    for _ in range(3):
        assert run_hook(down, timeout=HOOK_BOUND_S, hook=hook).returncode == 0
    assert len(spooled(tmp_path)) == 2
    # The third login went to its publisher in memory, which found no broker either.
    assert wait_for(lambda: dropped(tmp_path).total == 1)

    assert flush(write_config(tmp_path, vhost.url(), "max_events = 2")).returncode == 0
    events = [event for _, event in tap.take(2)]
    assert [e.dropped for e in events] == [1, 0]
    assert [e.dropped_logins for e in events] == [1, 0]
    [lost] = events[0].dropped_list
    assert (lost.kind, lost.user, lost.remote) == ("login", "alice", "192.0.2.10")
    assert lost.time > events[1].time, "the third login, captured after the two kept"
    assert events[1].dropped_list == ()
    assert dropped(tmp_path).total == 0


def test_records_and_a_drop_count_spooled_before_the_upgrade_are_sent(
    tmp_path: Path, vhost: Vhost, tap: TapQueue
) -> None:
    """What an older hook left: one file per record in the first format (no header), a
    failure among them, and the bare 21-byte counter. ``flush`` sends them all, logins
    first, the first event reporting the count; then the spool gets its slots."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    old = {
        "00000000001700000000-a.low.cap": b"PAM_TYPE=auth\0LW_OUTCOME=failure\0PAM_USER=root",
        "00000000001700000001-b.cap": b"PAM_TYPE=open_session\0PAM_USER=bob",
    }
    for n, (name, items) in enumerate(old.items()):
        record = b"LWCAP1\n" + b"LW_ID=%032x\0LW_TIME=%d\0" % (n + 1, 1_700_000_000 * 10**9 + n)
        (spool_dir / name).write_bytes(record + items)
    (spool_dir / "dropped").write_bytes(b"%020d\n" % 3)
    result = flush(write_config(tmp_path, vhost.url()))
    assert result.returncode == 0, result.stderr
    assert "published 2, left 0, unusable 0" in result.stdout
    login, failure = (event for _, event in tap.take(2))
    assert (login.user, login.kind, login.dropped, login.dropped_list) == ("bob", "login", 3, ())
    assert (failure.user, failure.kind, failure.dropped) == ("root", "failure", 0)
    assert not list(spool_dir.glob("*.cap"))
    assert (spool_dir / "slots").stat().st_size == 64 * 20 * 1024
    assert dropped(tmp_path).total == 0


def test_hostile_values_travel_safely(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, hook: str
) -> None:
    env: dict[str, str | bytes] = dict(PAM_ENV)
    env["PAM_USER"] = (
        b"\xff\xfeevil\r\nBcc: x@y" + b"A" * 100_000
    )  # execve caps one string at 128 KiB
    env["PAM_RHOST"] = "{{ 7*7 }}<script>"
    env["SSH_CONNECTION"] = "1.2.3.4 notaport 5.6.7.8 22"
    run = run_hook(write_config(tmp_path, vhost.url()), env=env, timeout=HOOK_BOUND_S, hook=hook)
    assert run.returncode == 0
    assert run.stderr == b""
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


@pytest.mark.parametrize("broker_up", [False, True], ids=["broker down", "broker up"])
def test_on_a_full_disk_the_login_is_sent_from_memory_or_counted(
    tmp_path: Path, vhost: Vhost, tap: TapQueue, broker_up: bool, hook: str
) -> None:
    """A spool on a tiny tmpfs, filled up, no slots made yet: the hook exits 0 and hands
    the login to its publisher in memory, which sends it, or counts it as dropped."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    spool_dir = tmp_path / "spool"
    config = write_config(tmp_path, vhost.url() if broker_up else vhost.url(port=1))
    if hook != HOOK:
        warm_settings(config)  # else the C front-end hands every login to Python
    env = " ".join(f"{k}='{v.strip()}'" for k, v in PAM_ENV.items() if k != "SSH_AUTH_INFO_0")
    script = f"""
        set -e
        mkdir -p {spool_dir}
        # mode 0700: the hook refuses a spool others may write to (tmpfs defaults to 1777).
        mount -t tmpfs -o size=64k,mode=0700 tmpfs {spool_dir}
        printf '%020d\\n' 0 > {spool_dir}/dropped
        dd if=/dev/zero of={spool_dir}/filler bs=4k count=64 2>/dev/null || true
        env -i {env} {hook} --config {config}
        echo "rc=$?"
        # The publisher works on after the hook: wait for its lock (it lingers a while).
        flock {spool_dir}/.publisher.lock true
        head -c 21 {spool_dir}/dropped
        ls -a {spool_dir}
    """
    out = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=HOOK_BOUND_S + 30,
        check=False,
    )
    if "mount:" in out.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    assert "rc=0" in out.stdout, out.stderr
    assert "No space left on device" in out.stderr
    assert ".cap" not in out.stdout
    if broker_up:
        [(_, event)] = tap.take(1)
        assert (event.user, event.client_ip, event.kind) == ("alice", "192.0.2.10", "login")
        assert "00000000000000000000" in out.stdout, "nothing dropped"
    else:
        assert "00000000000000000001" in out.stdout, "counted, in the first format's 21 bytes"
        assert tap.take(1, timeout=0.5) == []


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
