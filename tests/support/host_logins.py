"""Hosts logging in steadily, each as its own ``host add`` user, through the hook's publisher.

    python -m tests.support.host_logins --every 0.5 --seconds 180 --out FILE NAME=URL ...

One thread per host publishes a new login every ``--every`` seconds with the producer's
own channel (``producer.amqp``: its routing key, ``user_id``, confirms, as the hook's
publisher sends), and writes one JSON line per confirmed login to ``--out``: the host, the
event id and the event's time (epoch seconds), which a scenario compares with the mail's
arrival. The event's time is when the login was due, so a publish the broker holds back
counts in its latency. A publish that fails is written with its error and tried again on a
new connection, as the hook's spool keeps an event until the broker confirms it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime

from producer.amqp import connect
from schemas.config import BrokerConfig
from schemas.errors import LoginwatchError
from schemas.event import LoginEvent, Outcome, PamType, encode


class Out:
    """The output file, one JSON line at a time from any thread (a file, not a pipe: a pipe
    nobody reads until the end would block the publishers once its buffer is full)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by main
        self._lock = threading.Lock()

    def say(self, line: dict[str, object]) -> None:
        with self._lock:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def logins(out: Out, host: str, url: str, every: float, seconds: float) -> None:
    """Log in on ``host`` every ``every`` seconds for ``seconds``."""
    channel = None
    began, wall = time.monotonic(), time.time()
    n = 0
    while (elapsed := time.monotonic() - began) < seconds:
        time.sleep(max(0.0, n * every - elapsed))
        due = datetime.fromtimestamp(wall + n * every, UTC)
        n += 1
        login = LoginEvent(id=os.urandom(16), time=due, host=host, service="sshd",
                           pam_type=PamType.OPEN_SESSION, outcome=Outcome.SUCCESS,
                           user=f"admin{n % 3}", client_ip="192.0.2.10", client_port=50022,
                           auth_method="publickey", hook_version="chaos")  # fmt: skip
        while True:
            try:
                channel = channel or connect(BrokerConfig(url=url, connect_timeout=5))
                channel.publish(login.kind, encode(login), login.id_hex, login.time)
                break
            except LoginwatchError as exc:
                out.say({"host": host, "error": str(exc)[:200]})
                if channel is not None:
                    channel.close()
                channel = None
                time.sleep(0.2)
        out.say({"host": host, "id": login.id_hex, "time": login.time.timestamp()})
    if channel is not None:
        channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.host_logins")
    parser.add_argument("hosts", nargs="+", metavar="NAME=URL")
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", required=True, help="where the JSON lines go")
    args = parser.parse_args(argv)
    out = Out(args.out)
    threads = []
    for spec in args.hosts:
        host, _, url = spec.partition("=")
        threads.append(
            threading.Thread(target=logins, args=(out, host, url, args.every, args.seconds))
        )
        threads[-1].start()
    for thread in threads:
        thread.join()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
