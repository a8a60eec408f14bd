"""A login dropped on a host raises a system alert at once: real worker, broker and SMTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.event import encode
from tests.support.factories import event
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import loginwatch, publish, running_worker, write_config

pytestmark = pytest.mark.integration

ROUTES = """
[[route]]
to = ["noc@test.example"]
kinds = ["login-dropped", "host-flooding"]
"""


def test_a_dropped_login_is_mailed_once_to_the_route_that_names_it(
    vh: Vhost, tmp_path: Path
) -> None:
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "central.toml", vh, smtp_port=smtp.port, extra=ROUTES)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        login = event(dropped=3, hook_version="0.1.0")
        with running_worker(config, tmp_path / "worker.log") as worker:
            publish(vh, encode(login))
            mails = smtp.wait_for(2, timeout=30)
            publish(vh, encode(login))  # a redelivery: nothing is mailed twice
            worker.wait_for(rf"login-dropped:{login.id_hex} immediate noc@test.example:"
                            r" already sent", timeout=30)  # fmt: skip
    by_to = {str(m.message["To"]): m.message for m in mails}
    assert len(smtp.messages) == 2
    assert "Login alice@web-01" in str(by_to["ops@test.example"]["Subject"])  # the login
    dropped = by_to["noc@test.example"]  # only the route that names the kind
    assert dropped["X-Loginwatch-System"] == "login-dropped"
    assert (
        str(dropped["Subject"]) == "web-01 dropped 3 events before reporting: logins may be missing"
    )
    text = dropped.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Those events are lost" in text and "df -h and df -i" in text
