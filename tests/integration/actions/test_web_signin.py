"""Signing in to ``loginwatch web`` on loopback: the cookie's flags, failed sign-ins paused,
CSRF and nonces on every POST, a proxy header believed only where nobody else can send it,
the unix socket's mode set before it listens; the security headers on every response."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from consumer.silences.rules import Rule
from consumer.silences.table import SilenceTable
from consumer.store import Store, open_store
from consumer.web.server import open_socket
from schemas.config import parse_config
from schemas.errors import ConfigError
from tests.support.smtp_server import free_port
from tests.support.web_server import OPERATOR, PASSWORD, WebServer, field, web_section

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, Store]]:
    tmp = tmp_path_factory.mktemp("signin")
    port = free_port()
    config = tmp / "loginwatch.toml"
    config.write_text(f'[store]\nurl = "{tmp / "store.db"}"\n' + web_section(tmp, port)
                      + 'max_failed_logins = 3\nproxy_header = "X-Remote-User"\n'
                      + f'proxy_secret_file = "{secret(tmp)}"\n', encoding="utf-8")  # fmt: skip
    with open_store(str(tmp / "store.db")) as store:
        with WebServer(config, port, tmp / "web.log") as web:
            yield web, store


def secret(directory: Path) -> Path:
    path = directory / "proxy-secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("s" * 40 + "\n")
    return path


def sign_in(web: WebServer, name: str, password: str) -> httpx.Response:
    page = httpx.get(f"{web.url}/login", timeout=10)
    form = {"nonce": field(page.text, "nonce"), "name": name, "password": password, "next": "/"}
    return httpx.post(f"{web.url}/login", timeout=30, data=form)


def test_the_session_cookie_is_httponly_secure_lax_and_every_page_has_the_headers(
    served: tuple[WebServer, Store],
) -> None:
    web, _ = served
    done = sign_in(web, OPERATOR, PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = done.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag in cookie
    for response in (done, httpx.get(f"{web.url}/login", timeout=10)):
        assert "script-src" not in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"


def test_failed_sign_ins_are_paused_even_for_the_right_password(
    served: tuple[WebServer, Store],
) -> None:
    web, store = served
    for _ in range(3):
        assert sign_in(web, "mallory", "guess").status_code == 401
    paused = sign_in(web, OPERATOR, PASSWORD)  # the same client address: paused too
    assert paused.status_code == 429 and int(paused.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in paused.text
    # A stranger's names add no rows; only known operators have one.
    assert store.db.execute("SELECT name FROM web_operator WHERE name = 'mallory'") == []


def test_expiring_needs_the_session_the_csrf_token_and_a_fresh_nonce(
    served: tuple[WebServer, Store],
) -> None:
    web, store = served
    until = NOW + timedelta(hours=1)
    rule = SilenceTable(store.db).add(Rule(id="", hosts=("x-*",), starts=NOW, ends=until))
    headers = {"X-Remote-User": "pat", "X-Loginwatch-Proxy-Secret": "s" * 40}
    page = httpx.get(f"{web.url}/", headers=headers, timeout=10)
    assert page.status_code == 200 and "pat" in page.text
    csrf, nonce = field(page.text, "csrf"), field(page.text, "nonce")
    url = f"{web.url}/silences/{rule.id}/expire"
    anonymous = httpx.post(url, data={"csrf": csrf, "nonce": nonce}, timeout=10)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    wrong = httpx.post(url, headers=headers, data={"csrf": "x", "nonce": nonce}, timeout=10)
    assert wrong.status_code == 400 and "CSRF" in wrong.text
    done = httpx.post(url, headers=headers, data={"csrf": csrf, "nonce": nonce}, timeout=10)
    assert done.status_code == 303 and "expired" in done.headers["location"]
    again = httpx.post(url, headers=headers, data={"csrf": csrf, "nonce": nonce}, timeout=10)
    assert again.status_code == 410  # the nonce was spent
    forged = {"X-Remote-User": "pat", "X-Loginwatch-Proxy-Secret": "t" * 40}
    for untrusted in (forged, {"X-Remote-User": "pat"}):
        refused = httpx.get(f"{web.url}/", headers=untrusted, timeout=10)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


def test_a_proxy_header_over_tcp_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match=r"proxy_header over TCP needs proxy_secret_file"):
        parse_config('[web]\nbase_url = "https://lw.example.org"\nproxy_header = "X-User"\n')
    with pytest.raises(ConfigError, match=r"off loopback, without TLS"):
        parse_config('[web]\nlisten = "0.0.0.0:8025"\n')
    with pytest.raises(ConfigError, match=r"base_url is http:// to lw\.example\.org"):
        parse_config('[web]\nbase_url = "http://lw.example.org"\n')


def test_the_unix_socket_has_its_mode_before_it_listens(tmp_path: Path) -> None:
    path = tmp_path / "web.sock"
    config = parse_config(f'[web]\nlisten = "unix:{path}"\nproxy_header = "X-User"\n'
                          "socket_mode = 0o660\n")  # fmt: skip
    sock = open_socket(config)
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    finally:
        sock.close()
    path.unlink()
    path.write_text("not a socket")
    with pytest.raises(ConfigError, match="is no socket"):
        open_socket(config)
