"""Benchmark: the channels. Figures, side by side in one run; no assertions.

- a channel's ``deliver()`` alone (format, sign, post, classify, over the reused client)
  against raw httpx posting the same pre-encoded body to the same server, interleaved, the
  median of rounds: the webhook (signed with two keys) and Slack (blocks);
- the worker's posts per second through the whole pipeline (decode, enrich, policy, render,
  post, record) to a webhook receiver, beside its mails per second to aiosmtpd, in the
  same run on the same broker.

The HTTP server is a bare keep-alive one on loopback answering 204 (its own cost the same for
both sides; tests/support/receiver_server.py checks, this one only answers).

Run alone: ``.venv/bin/python -m tests.bench.bench_channels``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec

from consumer.broker.connection import Broker
from consumer.channels import slack, webhook
from consumer.channels.base import Channel
from consumer.channels.outlets import open_receiver
from consumer.core.decisions import Action, Decision
from consumer.core.notice import Notice
from consumer.stages.notice import alert_notice
from schemas import topology
from schemas.config import load_config, parse_config
from tests.bench import bench_worker
from tests.bench.bench_support import bench_vhost
from tests.support.factories import enriched, event
from tests.support.receiver_server import SIGNING_KEYS
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import central_sections

POSTS = 2000
ROUNDS = 5
PIPELINE = 300


@contextmanager
def fast_server() -> Iterator[int]:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that answers every POST 204; its port."""
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()


def notices(count: int) -> list[Notice]:
    decision = Decision(action=Action.IMMEDIATE, reason="bench", recipient="receiver:hook")
    return [alert_notice(enriched(event(client_port=1000 + n)), decision, f"alert:{n}:hook")
            for n in range(count)]  # fmt: skip


def _rate(count: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def deliver_vs_raw(port: int, tmp: Path) -> dict[str, float]:
    """Each channel's deliver() against raw httpx.post of the same bytes, interleaved."""
    keys = tmp / "keys"
    keys.write_text("\n".join(SIGNING_KEYS) + "\n")
    keys.chmod(0o600)
    url = tmp / "url"
    url.write_text(f"http://127.0.0.1:{port}/services/T0/B0/benchXXXXXXXXXXXX\n")
    url.chmod(0o600)
    config = parse_config(
        f'[receiver.hook]\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\n'
        f'secret_file = "{keys}"\n[receiver.chat]\nkind = "slack"\nurl_file = "{url}"\n'
    )
    made = notices(POSTS)
    figures: dict[str, float] = {}
    for name, kind, body in (("webhook", "hook", webhook.body), ("slack", "chat", _slack_body)):
        channel: Channel = open_receiver(kind, config.receiver[kind])
        target = f"http://127.0.0.1:{port}/{'hook' if kind == 'hook' else 'services/T0/B0/x'}"
        ours, raw = _versus(channel, made, target, [body(n) for n in made])
        channel.close()
        med = statistics.median
        figures[f"{name}_deliver_per_s"] = round(med(ours))
        figures[f"{name}_raw_httpx_per_s"] = round(med(raw))
        figures[f"{name}_deliver_vs_raw"] = round(med(ours) / med(raw), 2)
    return figures


def _versus(
    channel: Channel, made: list[Notice], target: str, bodies: list[bytes]
) -> tuple[list[float], list[float]]:
    """Rounds of ``deliver()`` and of raw ``httpx.post`` of the same bytes, interleaved."""
    ours, raw = [], []

    def delivering() -> None:
        for notice in made:
            channel.deliver(notice)

    with httpx.Client() as client:

        def posting() -> None:
            for data in bodies:
                client.post(target, content=data, headers={"Content-Type": "application/json"})

        for _ in range(ROUNDS):
            ours.append(_rate(POSTS, delivering))
            raw.append(_rate(POSTS, posting))
    return ours, raw


def _slack_body(notice: Notice) -> bytes:
    return msgspec.json.encode(slack.payload(notice))


def pipeline_rates(port: int, tmp: Path) -> dict[str, float]:
    """Worker posts/s to a webhook receiver beside its mails/s, same broker, same run."""
    keys = tmp / "pkeys"
    keys.write_text("\n".join(SIGNING_KEYS) + "\n")
    keys.chmod(0o600)
    figures: dict[str, float] = {}
    with bench_vhost() as vhost, SmtpServer() as smtp:
        for name, route, section in (
            ("mails", '"ops@example.org"', ""),
            (
                "posts",
                '"receiver:hook"',
                f'[receiver.hook]\nkind = "webhook"\n'
                f'url = "http://127.0.0.1:{port}/hook"\nsecret_file = "{keys}"\n',
            ),
        ):
            config = tmp / f"{name}.toml"
            config.write_text(
                central_sections(vhost.url(), smtp.port, tmp / name, "1, 2").replace(
                    "[worker]\n", f"[worker]\nprefetch = {bench_worker.PREFETCH}\n")
                + section + f"[policy]\nflood_max = 100000\n[[route]]\nto = [{route}]\n"
            )  # fmt: skip
            (tmp / name).mkdir()
            with Broker(load_config(config).broker) as broker:
                broker.declare(topology.queue_specs((1, 2)))
            bench_worker._fill(vhost, PIPELINE)
            figures[f"worker_{name}_per_s"] = round(bench_worker.worker_rate(config, PIPELINE), 1)
            bench_worker._purge(vhost, topology.DIGEST_QUEUE)
    figures["posts_vs_mails"] = round(
        figures["worker_posts_per_s"] / figures["worker_mails_per_s"], 2
    )
    return figures


def measure(quick: bool = False) -> dict[str, object]:
    global POSTS, ROUNDS, PIPELINE
    if quick:
        POSTS, ROUNDS, PIPELINE = 300, 3, 100
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="lw-bench-c-") as tmp, fast_server() as port:
        figures.update(deliver_vs_raw(port, Path(tmp)))
        figures.update(pipeline_rates(port, Path(tmp)))
    return figures


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv), indent=2))
