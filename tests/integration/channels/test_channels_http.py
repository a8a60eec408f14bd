"""Each channel against a real HTTP server of ours: ``send-test`` for every receiver kind,
``check-config``, verified TLS with a receiver's own ``ca_file``, and the one client's
habits (connection reuse, no redirect, timeouts, ``Retry-After``); a digest to a receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from consumer.channels.outlets import open_outlets, open_receiver
from consumer.core.decisions import Action, Decision
from consumer.core.notice import Notice
from consumer.digest.windows import window_at
from consumer.stages.notice import alert_notice
from schemas.config import parse_config
from schemas.errors import PermanentSendError, TransientSendError
from tests.support.digest_support import config_text, day, login, store_events
from tests.support.digest_support import digests_for as digest_sender
from tests.support.factories import enriched, event
from tests.support.receiver_server import (
    DROP,
    DROP_AFTER_ACCEPT,
    KINDS,
    ReceiverServer,
    receivers_config,
)
from tests.support.worker_helpers import loginwatch

pytestmark = pytest.mark.integration


def notice(target: str, n: int = 0) -> Notice:
    decision = Decision(action=Action.IMMEDIATE, reason="route #1", recipient=target)
    return alert_notice(enriched(event(tty=f"t{n}")), decision, f"alert:{n}:{target}")


@pytest.mark.parametrize("kind", KINDS)
def test_send_test_reaches_every_kind_of_receiver(tmp_path: Path, kind: str) -> None:
    with ReceiverServer(kind) as server:
        config = receivers_config(tmp_path / "lw.toml", "amqp://guest:guest@127.0.0.1/%2F", 25,
                                  {"it": server}, to=["receiver:it"])  # fmt: skip
        dry = loginwatch("send-test", "--config", str(config), "--to", "receiver:it", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert server.attempts == 0  # a dry run posts nothing
        json.loads(dry.stdout)  # the body, as JSON
        sent = loginwatch("send-test", "--config", str(config), "--to", "receiver:it")
        [post] = server.wait_for(1)
    assert sent.returncode == 0, sent.stderr
    # An Apprise URL's host may be its credential (pover://USER@TOKEN): only its scheme shows.
    where = "json://" if kind == "apprise" else f"http://127.0.0.1:{server.port}"
    assert sent.stdout == f"sent a test notice to receiver:it ({kind} → {where})\n"
    assert server.problems == []
    text = post.body.decode()
    assert ("loginwatch-test" in text and "[test]" in text) or kind == "teams"


def test_send_test_names_an_unknown_receiver_and_a_refusal(tmp_path: Path) -> None:
    with ReceiverServer("slack") as server:
        config = receivers_config(tmp_path / "lw.toml", "amqp://127.0.0.1/%2F", 25,
                                  {"chat": server}, to=["receiver:chat"])  # fmt: skip
        missing = loginwatch("send-test", "--config", str(config), "--to", "receiver:pager")
        server.answer(404)
        refused = loginwatch("send-test", "--config", str(config), "--to", "receiver:chat")
    assert missing.returncode == 1
    assert "receiver:pager: no [receiver.pager] in the config (defined: chat)" in missing.stderr
    assert refused.returncode == 1
    assert refused.stderr.strip() == "loginwatch send-test: slack: 404 Not Found"


def test_check_config_counts_receivers_and_shows_no_secret(tmp_path: Path) -> None:
    with ReceiverServer("slack") as chat, ReceiverServer("webhook") as hook:
        config = receivers_config(tmp_path / "lw.toml", "amqp://127.0.0.1/%2F", 25,
                                  {"chat": chat, "hook": hook})  # fmt: skip
        done = loginwatch("check-config", "--config", str(config))
        # A retired Office 365 connector URL is refused with the line that says what to use.
        teams = chat.secret_file("teams", "https://contoso.webhook.office.com/webhookb2/a/x/y/z")
        config.write_text(
            config.read_text() + f'[receiver.team]\nkind = "teams"\nurl_file = "{teams}"\n'
        )
        retired = loginwatch("check-config", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "  routes  immediate→1 recipient(s), 2 receiver(s)\n" in done.stdout
    assert f"  receiver chat (slack) → http://127.0.0.1:{chat.port}; secrets in " in done.stdout
    assert f"  receiver hook (webhook) → http://127.0.0.1:{hook.port}; secrets in " in done.stdout
    for secret in (*chat.secrets(), *hook.secrets()):
        assert secret not in done.stdout
    assert retired.returncode == 1
    assert retired.stderr.strip() == (
        "loginwatch check-config: $.receiver.team.url_file: https://contoso.webhook.office.com"
        " is an Office 365 connector URL, which Microsoft retired: in Teams, add a Workflows"
        " webhook to the channel (the template 'Send webhook alerts to a channel') and put the"
        " URL it gives (with sig=) in this file"
    )


def test_verified_tls_with_the_receivers_own_ca_file(tmp_path: Path) -> None:
    with ReceiverServer("webhook", tls=True) as hook:
        trusted = parse_config(hook.section("hook"))
        channel = open_receiver("hook", trusted.receiver["hook"])
        try:
            channel.deliver(notice("receiver:hook"))
        finally:
            channel.close()
        untrusted = hook.section("other").replace(f'ca_file = "{hook.cert_file}"\n', "")
        stranger = open_receiver("other", parse_config(untrusted).receiver["other"], attempts=1)
        with pytest.raises(TransientSendError, match="TLS certificate not trusted"):
            stranger.deliver(notice("receiver:other", 1))
        stranger.close()
    assert len(hook.posts) == 1 and hook.problems == []


def test_one_connection_no_redirect_and_retry_after_beyond_the_cap(tmp_path: Path) -> None:
    with ReceiverServer("mattermost") as chat:
        channel = open_receiver("chat", parse_config(chat.section("chat")).receiver["chat"])
        try:
            for n in range(5):
                channel.deliver(notice("receiver:chat", n))
            assert chat.connections == 1  # kept alive and reused
            chat.answer(301)
            with pytest.raises(PermanentSendError, match="301 Moved Permanently: loginwatch"
                               " follows no redirect"):  # fmt: skip
                channel.deliver(notice("receiver:chat", 5))
            chat.answer(DROP, DROP_AFTER_ACCEPT)  # cut twice, the second after storing it
            channel.deliver(notice("receiver:chat", 6))
            assert len(chat.posts) == 7 and chat.attempts == 9  # the unknowable window
            chat.answer(429, retry_after=300)  # longer than we may hold the pipeline
            started = time.monotonic()
            with pytest.raises(TransientSendError, match="retry after 300 s"):
                channel.deliver(notice("receiver:chat", 7))
            assert time.monotonic() - started < 2 and chat.attempts == 10  # parked at once
        finally:
            channel.close()


def test_a_silent_receiver_times_out_as_transient(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        config = parse_config(
            f'[receiver.h]\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/x"\n'
            f'secret_file = "{_keys(tmp_path)}"\ntimeout = 0.5\n'
        )
        channel = open_receiver("h", config.receiver["h"], attempts=1)
        with pytest.raises(TransientSendError, match="timed out waiting for the answer"):
            channel.deliver(notice("receiver:h"))
        channel.close()


def _keys(tmp_path: Path) -> str:
    path = tmp_path / "keys"
    path.write_text("whsec_" + "a" * 44 + "\n")
    path.chmod(0o600)
    return str(path)


def test_a_digest_reaches_a_receiver_as_a_short_summary(store_url: str) -> None:
    with ReceiverServer("webhook") as hook, ReceiverServer("telegram") as tg:
        text = config_text(store_url, hook.section("hook"), tg.section("tg"))
        # Only the receivers: the digest's usual routes would mail port 25.
        text = text.split("[[route]]", 1)[0] + text.split("[receiver.hook]", 1)[1].join(
            ["[receiver.hook]", ""]
        )
        text += '[[route]]\nto = ["receiver:hook", "receiver:tg"]\nmode = "digest"\n'
        config = parse_config(text)
        outlets = open_outlets(config)
        digests = digest_sender(config, outlets)
        try:
            store_events(digests, [login(day(0, 2), "web-1"), login(day(0, 3), "db-1", "root")],
                         day(0, 15))  # fmt: skip
            window = window_at(digests.schedule, day(0, 1))
            assert digests.send_window(window, day(1, 0.1)) == 2
            assert digests.send_window(window, day(1, 0.2)) == 0  # once
        finally:
            outlets.close()
            digests.store.store.close()
        [signed] = hook.posts
        [message] = tg.posts
    assert hook.problems == [] and tg.problems == []
    body = signed.json
    assert body["type"] == "loginwatch.digest" and body["target"] == "receiver:hook"
    assert (body["data"]["total"], body["data"]["root"]) == (2, 1)
    assert body["data"]["window"]["key"] == window.key
    assert "<b>Digest: 2 events</b>" in message.json["text"]
