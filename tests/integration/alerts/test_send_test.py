"""``loginwatch send-test``: a real sample mail, or one clear line and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.smtp_server import SmtpServer, free_port

pytestmark = pytest.mark.integration

LOGINWATCH = str(Path(sys.executable).with_name("loginwatch"))


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOGINWATCH, "send-test", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "loginwatch.toml"
    path.write_text(
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom = "lw@example.org"\ntimeout = 5\n{extra}'
    )
    return path


def test_sends_a_sample_alert_through_starttls_and_auth(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.pw"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    with SmtpServer(tls="starttls", users={"lw": "pw"}) as smtp:
        extra = (
            f'starttls = true\nca_file = "{smtp.cert_file}"\nusername = "lw"\n'
            f'password_file = "{secret}"\n'
        )
        result = run(write_config(tmp_path, smtp.port, extra), "--to", "me@example.org")
        (received,) = smtp.wait_for(1)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"sent a test mail to me@example.org via 127.0.0.1:{smtp.port} (STARTTLS, AUTH as lw)\n"
    )
    assert received.rcpt_tos == ("me@example.org",)
    assert (
        str(received.message["Subject"]).strip().startswith("[loginwatch test] NEW SOURCE: Login")
    )
    body = received.message.get_body(("plain",))
    assert body is not None and "a sample alert to prove the mail settings" in body.get_content()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (None, "Connection refused"),
        ("550 5.7.1 relaying denied", "550 5.7.1 relaying denied"),
    ],
)
def test_failure_is_one_line_and_exit_1(tmp_path: Path, reply: str | None, error: str) -> None:
    if reply is None:
        port = free_port()
        result = run(write_config(tmp_path, port), "--to", "me@example.org")
    else:
        with SmtpServer() as smtp:
            smtp.fail_next(reply)
            port = smtp.port
            result = run(write_config(tmp_path, port), "--to", "me@example.org")
    assert result.returncode == 1
    assert result.stderr == f"loginwatch send-test: SMTP 127.0.0.1:{port}: {error}\n"
    assert result.stdout == ""


def test_a_bad_address_is_a_usage_error(tmp_path: Path) -> None:
    result = run(write_config(tmp_path, 25), "--to", "not-an-address")
    assert result.returncode == 2
    assert "'not-an-address' is neither an address (user@example.org, without ':')" in result.stderr


def test_dry_run_prints_the_mail_without_a_server(tmp_path: Path) -> None:
    result = run(write_config(tmp_path, free_port()), "--to", "me@example.org", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "To: me@example.org\n" in result.stdout
    assert "Content-Type: multipart/alternative" in result.stdout
