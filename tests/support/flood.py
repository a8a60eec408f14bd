"""A flooding host: publishes at a fixed rate as a real ``host add`` user, without confirms.

    python -m tests.support.flood URL --host NAME --rate 3500 --phase junk:3 --phase valid:3

``URL`` is the host user's AMQP URL (with its password). Each phase publishes for its
seconds at ``--rate`` messages per second, paced every ``TICK_S``:

- ``junk``: 200 random bytes, which no decoder takes;
- ``valid``: real ``LoginEvent`` logins under the host's own name, each a new user from a
  new source (every one decided, first-seen written: the worst a worker can be given);
- ``failures``: failed logins under its own name, each from a new source;
- ``records``: heartbeats (32 addresses each, the most a heartbeat may list) and logouts
  under its own name, in turns: the two message types that have routing keys of their own
  (``host-NAME.heartbeat``, ``host-NAME.logout``), so they may hash into other lanes.

Every message carries the host user's ``user_id`` and its own routing key, as the broker
requires. It prints one JSON line per phase: what it sent and the rate it
achieved (the broker's flow control can hold a publisher back).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import pika

from schemas import topology, wire
from schemas.event import LoginEvent, Outcome, PamType, encode
from schemas.records import Heartbeat, Logout

TICK_S: Final = 0.01


def junk(_n: int) -> bytes:
    return os.urandom(200)


def login_of(host: str, outcome: Outcome) -> Callable[[int], bytes]:
    def make(n: int) -> bytes:
        source = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"  # a new one each time
        return encode(LoginEvent(
            id=os.urandom(16), time=datetime.now(UTC), host=host, service="sshd",
            pam_type=PamType.OPEN_SESSION if outcome is Outcome.SUCCESS else PamType.AUTH,
            outcome=outcome, user=f"flood{n}", client_ip=source, client_port=40000,
            auth_method="password", hook_version="flood",
        ))  # fmt: skip

    return make


def records_of(host: str) -> Callable[[int], tuple[bytes, str]]:
    """Heartbeats and logouts in turns, each with its message type."""

    def make(n: int) -> tuple[bytes, str]:
        now = datetime.now(UTC)
        if n % 2:
            logout = Logout(id=os.urandom(16), time=now, host=host, user=f"flood{n}",
                            tty=f"pts/{n % 100}", login_time=now, session_pid=n)  # fmt: skip
            return wire.encode(logout), topology.LOGOUT_TYPE
        addresses = tuple(bytes([10, n >> 8 & 255, n & 255, i]) for i in range(32))
        beat = Heartbeat(id=os.urandom(16), time=now, host=host, addresses=addresses)
        return wire.encode(beat), topology.HEARTBEAT_TYPE

    return make


def publish(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    user: str,
    make: Callable[[int], bytes | tuple[bytes, str]],
    rate: float,
    seconds: float,
) -> dict[str, float]:
    """Publish ``make(n)`` (a body, or a body and its message type) at ``rate`` per second
    for ``seconds``; what was achieved."""
    props = pika.BasicProperties(delivery_mode=2, user_id=user,
                                 content_type=topology.CONTENT_TYPE)  # fmt: skip
    sent = 0
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        due = int(min(elapsed + TICK_S, seconds) * rate)
        while sent < due:
            made = make(sent)
            body, kind = made if isinstance(made, tuple) else (made, topology.EVENT_TYPE)
            channel.basic_publish(topology.EXCHANGE, topology.routing_key(user, kind), body,
                                  props)  # fmt: skip
            sent += 1
        time.sleep(max(0.0, began + (sent / rate) - time.monotonic()))
    took = time.monotonic() - began
    return {"sent": sent, "seconds": round(took, 3), "rate": round(sent / took, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.flood")
    parser.add_argument("url")
    parser.add_argument("--host", required=True, help="the host's name (its user: host-NAME)")
    parser.add_argument("--rate", type=float, default=3500)
    parser.add_argument("--phase", action="append", required=True, help="KIND:SECONDS")
    args = parser.parse_args(argv)
    user = topology.host_user(args.host)
    kinds: dict[str, Callable[[int], bytes | tuple[bytes, str]]] = {
        "junk": junk,
        "valid": login_of(args.host, Outcome.SUCCESS),
        "failures": login_of(args.host, Outcome.FAILURE),
        "records": records_of(args.host),
    }
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    try:
        channel = connection.channel()
        for phase in args.phase:
            kind, _, seconds = phase.partition(":")
            done = publish(channel, user, kinds[kind], args.rate, float(seconds))
            print(json.dumps({"phase": kind, "started": time.time() - done["seconds"], **done}),
                  flush=True)  # fmt: skip
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
