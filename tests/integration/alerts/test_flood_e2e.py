"""Flood budgets on real parts: RabbitMQ → worker → SMTP server (the issue's report).

Eleven failed passwords for root on web-1 used to fold the real root login on db-1 that
followed ("folded …", no mail). Published under the central user, which may speak for any
host, as the demo and a single-machine install do.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas import topology
from schemas.event import Outcome, PamType, encode
from tests.support.factories import T0, event
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer, text_part
from tests.support.worker_helpers import depth, loginwatch, publish, running_worker, write_config

pytestmark = pytest.mark.integration


def test_failures_on_web1_never_fold_the_root_login_on_db1(vh: Vhost, tmp_path: Path) -> None:
    failures = [
        event(
            host="web-1",
            user="root",
            client_ip=f"203.0.113.{n}",
            pam_type=PamType.AUTH,
            outcome=Outcome.FAILURE,
            auth_method="password",
            time=T0 + timedelta(seconds=n),
        )
        for n in range(11)
    ]
    real = event(host="db-1", user="root", client_ip="198.51.100.23", time=T0 + timedelta(1))
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log") as worker:
            for failure in failures:
                publish(vh, encode(failure), user_id="guest")
            mails = smtp.wait_for(11)
            publish(vh, encode(real), user_id="guest")
            mails = smtp.wait_for(12)
            worker.wait_for(rf"{real.id_hex} immediate ops@test.example: sent")
    subjects = [str(received.message["Subject"]).strip() for received in mails]
    assert sum(s.startswith("Flood control") for s in subjects) == 1  # web-1's failures
    (login,) = [r.message for r in mails if "root@db-1" in str(r.message["Subject"])]
    assert str(login["Subject"]).startswith("NEW SOURCE: ")
    assert "198.51.100.23" in text_part(login)
    assert depth(vh, topology.DEAD_QUEUE) == 0
