"""`loginwatch broker-user add` and `host add|list` on the real broker (issue 10.3).

The central user is made from the config alone (user and vhost from [broker]
url, password into [broker] password_file), and works: it connects and
declares the topology. Every refusal happens before anything exists on the
broker or on disk. User names are unique per test and deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from consumer.broker import host_users
from consumer.cli import main
from schemas.topology import host_user
from tests.support.deploy_host import VENV, run_install
from tests.support.services import AMQP_HOST, AMQP_PORT, Vhost, rabbitmqctl

pytestmark = pytest.mark.integration


@pytest.fixture
def user() -> Iterator[str]:
    name = f"lwcentral-{uuid.uuid4().hex[:8]}"
    yield name
    rabbitmqctl("delete_user", name, check=False)


def users() -> set[str]:
    out = rabbitmqctl("list_users", "--formatter", "json").stdout
    return {row["user"] for row in json.loads(out)}


def central_config(tmp_path: Path, user: str, vhost: str) -> tuple[Path, Path]:
    secret = tmp_path / "etc" / "broker.password"
    config = tmp_path / "central.toml"
    url = f"amqp://{user}@{AMQP_HOST}:{AMQP_PORT}/{quote(vhost, safe='')}"
    config.write_text(f'[broker]\nurl = "{url}"\npassword_file = "{secret}"\n')
    return config, secret


def test_broker_user_add_makes_the_user_the_config_names_and_it_works(
    vh: Vhost, tmp_path: Path, user: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, secret = central_config(tmp_path, user, vh.name)
    old = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        assert main(["broker-user", "add", "--config", str(config), "--owner", "root"]) == 0
    finally:
        os.umask(old)
    assert f"created broker user {user}" in capsys.readouterr().out
    info = secret.stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (0, "0o600")
    password = secret.read_text().strip()
    assert len(password) >= 32
    # The password reached the broker on stdin and nowhere else: this is it.
    assert main(["setup", "--config", str(config)]) == 0
    url = vh.url(user, password)
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        connection.channel().queue_declare("loginwatch.alerts", passive=True)


def test_the_password_file_belongs_to_the_service_user(
    vh: Vhost, tmp_path: Path, user: str
) -> None:
    config, secret = central_config(tmp_path, user, vh.name)
    assert main(["broker-user", "add", "--config", str(config), "--owner", "nobody"]) == 0
    assert (secret.stat().st_uid, secret.stat().st_gid) == (65534, 65534)


@pytest.mark.parametrize(
    "bad",
    [
        "guest-user",
        "host-user",
        "option-user",
        "missing-vhost",
        "existing-file",
        "existing-user",
        "no-owner",
    ],
)
def test_broker_user_add_refuses_before_anything_is_made(
    vh: Vhost, tmp_path: Path, user: str, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    name = {"guest-user": "guest", "host-user": host_user("web-1"), "option-user": "-p"}.get(
        bad, user
    )
    vhost = f"missing-{uuid.uuid4().hex[:6]}" if bad == "missing-vhost" else vh.name
    config, secret = central_config(tmp_path, name, vhost)
    owner = "no-such-user-here" if bad == "no-owner" else "root"
    if bad == "existing-file":
        secret.parent.mkdir()
        secret.write_text("the operator's\n")
    if bad == "existing-user":
        rabbitmqctl("add_user", user, "kept-as-it-is")
    before = users()
    assert main(["broker-user", "add", "--config", str(config), "--owner", owner]) == 1
    err = capsys.readouterr().err
    assert err.startswith("loginwatch broker-user: "), err
    # Only the user the config names could have been made (other tests, perhaps running
    # in parallel, add and remove users of their own meanwhile).
    assert (name in users()) == (name in before)
    if bad == "existing-file":
        assert secret.read_text() == "the operator's\n"
    else:
        assert not secret.exists()
    expected = {
        "guest-user": "$.broker.url: names the user 'guest'",
        "host-user": "$.broker.url: names the user 'host-web-1'",
        "option-user": "$.broker.url: the user '-p' is not a plain name",
        "missing-vhost": "does not exist on this broker",
        "existing-file": "cannot create the password file: File exists",
        "existing-user": "exists already",
        "no-owner": "--owner no-such-user-here: no such user",
    }[bad]
    assert expected in err


@pytest.fixture
def host_names() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        rabbitmqctl("delete_user", host_user(name), check=False)


def test_host_add_warns_of_a_loopback_url_and_its_snippet_is_what_install_host_installs(
    vh: Vhost, tmp_path: Path, host_names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"h{uuid.uuid4().hex[:6]}-web-1"
    host_names.append(name)
    config = tmp_path / "central.toml"
    config.write_text(f'[broker]\nurl = "{vh.url()}"\n')
    secrets = tmp_path / "hosts"
    assert main(["host", "add", name, "--config", str(config), "--secrets-dir", str(secrets)]) == 0
    out, err = capsys.readouterr()
    assert "warning: the URL amqp://host-" in err
    assert "--url" in err
    assert f"# {host_users.HOST_CONFIG_FILE} on {name}" in out
    # The operator's next step, as printed: the snippet and the password to the host.
    (tmp_path / f"{name}.toml").write_text(out)
    shutil.copy(secrets / f"{name}.password", tmp_path / f"{name}.password")
    root = tmp_path / "root"
    shutil.copytree("/etc/pam.d", root / "etc" / "pam.d", symlinks=True)
    run_install(
        "--root", root, "--venv", VENV, "--config", tmp_path / f"{name}.toml",
        "--password-file", tmp_path / f"{name}.password",
    )  # fmt: skip
    assert (root / host_users.HOST_CONFIG_FILE.lstrip("/")).read_text() == out
    installed = root / host_users.HOST_PASSWORD_FILE.lstrip("/")
    assert installed.read_bytes() == (secrets / f"{name}.password").read_bytes()


def test_host_add_with_a_url_the_host_reaches_says_nothing_more(
    vh: Vhost, tmp_path: Path, host_names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"h{uuid.uuid4().hex[:6]}-web-2"
    host_names.append(name)
    config = tmp_path / "central.toml"
    config.write_text(f'[broker]\nurl = "{vh.url()}"\n')
    url = f"amqps://broker.example.org:5671/{quote(vh.name, safe='')}"
    args = ["--config", str(config), "--secrets-dir", str(tmp_path), "--url", url]
    assert main(["host", "add", name, *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f'url = "amqps://host-{name}@broker.example.org:5671/' in out


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("amqp://127.0.0.1/", True),
        ("amqp://127.1.2.3:5672/", True),
        ("amqp://[::1]:5672/", True),
        ("amqps://localhost/", True),
        ("amqps://LOCALHOST./", True),
        ("amqps://broker.example.org:5671/", False),
        ("amqp://192.0.2.1/", False),
        ("amqp://[2001:db8::1]/", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert host_users.is_loopback(url) is loopback


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("amqp://broker.example.org/%2F", True),
        ("amqp://192.0.2.1:5672/%2F", True),
        ("amqp://localhost.example.org/%2F", True),  # a name is never resolved
        ("amqps://broker.example.org:5671/%2F", False),
        ("amqp://127.0.0.1:5672/%2F", False),
    ],
)
def test_host_add_refuses_a_plaintext_url_to_another_machine(
    vh: Vhost, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, refused: bool
) -> None:
    # The host would refuse such a config itself ([broker] allow_plaintext): refuse it here,
    # before a user exists, unless the operator says --allow-plaintext.
    config = tmp_path / "central.toml"
    config.write_text(f'[broker]\nurl = "{vh.url()}"\n')
    name = f"pt{uuid.uuid4().hex[:6]}"
    url = url.replace("%2F", quote(vh.name, safe=""))
    args = ["host", "add", name, "--config", str(config), "--url", url,
            "--secrets-dir", str(tmp_path)]  # fmt: skip
    try:
        status = main(args)
        out, err = capsys.readouterr()
        if refused:
            assert status == 1 and "unencrypted" in err and out == ""
            assert host_user(name) not in users()
            assert main([*args, "--allow-plaintext"]) == 0
            assert "allow_plaintext = true" in capsys.readouterr().out
        else:
            assert status == 0 and "allow_plaintext" not in out
    finally:
        rabbitmqctl("delete_user", host_user(name), check=False)


def test_host_list_says_so_when_there_are_no_hosts(
    vh: Vhost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'[broker]\nurl = "{vh.url()}"\n')
    assert main(["host", "list", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no host users on vhost '{vh.name}'" in err
