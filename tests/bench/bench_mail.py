"""Benchmark: alert mails per second, rendered and sent to a local aiosmtpd server.

``python -m tests.bench.bench_mail [COUNT]`` prints one JSON line of figures (no assertions):
render only; render + send over one reused connection (the two stages as the worker runs
them); and sending pre-rendered mails over one reused connection vs a new connection per
mail (what reuse saves). ``bench_mail(count)`` returns the same figures for tests/bench.
"""

from __future__ import annotations

import json
import sys
import time

from consumer.channels.mail import SmtpSender
from consumer.core.decisions import Action, Decision
from consumer.stages.render import Renderer
from schemas.config import SmtpConfig, parse_config
from tests.support.factories import enriched, event
from tests.support.smtp_server import SmtpServer


def bench_mail(count: int = 300) -> dict[str, float]:
    renderer = Renderer(parse_config('[smtp]\nfrom = "loginwatch@example.org"'))
    logins = [enriched(event(client_port=1000 + n)) for n in range(count)]
    decision = Decision(action=Action.IMMEDIATE, reason="bench", recipient="ops@example.org")
    figures: dict[str, float] = {"count": count}

    started = time.perf_counter()
    mails = [renderer.render(login, decision) for login in logins]
    figures["render_per_s"] = _rate(count, started)

    with SmtpServer() as smtp:
        config = SmtpConfig(host="127.0.0.1", port=smtp.port, from_="loginwatch@example.org")
        started = time.perf_counter()
        with SmtpSender(config) as sender:
            for login in logins:
                sender.send(renderer.render(login, decision))
        smtp.wait_for(count)
        figures["render_send_reused_per_s"] = _rate(count, started)

        started = time.perf_counter()
        with SmtpSender(config) as sender:
            for mail in mails:
                sender.send(mail)
        smtp.wait_for(2 * count)
        figures["send_reused_per_s"] = _rate(count, started)

        started = time.perf_counter()
        for mail in mails:
            with SmtpSender(config) as sender:
                sender.send(mail)
        smtp.wait_for(3 * count)
        figures["send_new_connection_per_s"] = _rate(count, started)
    return figures


def _rate(count: int, started: float) -> float:
    return round(count / (time.perf_counter() - started), 1)


if __name__ == "__main__":
    print(json.dumps(bench_mail(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
