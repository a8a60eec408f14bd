"""``[receiver.NAME]`` sections, references in routes, secrets and URLs (unit, no service)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from consumer.channels.http import Answer, Poster, classify_answer, classify_error, retry_after
from consumer.core.decisions import PolicyState
from consumer.core.routing import digest_recipients, first_routes
from consumer.stages.policy import Policy
from schemas.config import parse_config
from schemas.errors import ConfigError, PermanentSendError, RetryLater, TransientSendError
from schemas.receivers import Resolved, reference, resolve
from tests.support.factories import T0, enriched, event

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


def secret(tmp_path: Path, name: str, text: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return str(caught.value)


# --- references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "said"),
    [
        ("slack:ops@example.org", "neither an address (user@example.org, without ':')"),
        ("receiver:Ops", "receiver names are lower-case (write 'receiver:ops')"),
        ("receiver:", "neither an address"),
        ("receiver:ops@example.org", "neither an address"),
        ("ops", "neither an address"),
        ("receiver:a b", "neither an address"),
    ],
)
def test_a_recipient_is_an_address_or_a_reference_never_both(recipient: str, said: str) -> None:
    error = config_error(f'[[route]]\nto = ["ops@example.org", "{recipient}"]\n')
    assert error.startswith("<config>: $.route[0]: to[1]: ") and said in error


def test_an_undefined_receiver_is_refused_naming_the_key() -> None:
    error = config_error(
        '[receiver.chat]\nkind = "slack"\nurl_file = "/etc/lw/slack.url"\n'
        '[[route]]\nto = ["a@example.org"]\n[[route]]\nto = ["a@example.org", "receiver:pager"]\n'
    )
    assert error == (
        "<config>: $.route[1].to[1]: receiver:pager names no receiver: add a [receiver.pager]"
        " section (defined: chat)"
    )
    silence = config_error(
        '[[silence]]\nuntil = 2030-01-01T00:00:00Z\nhosts = ["x"]\nto = ["receiver:zz"]\n'
    )
    assert silence.startswith("<config>: $.silence[0].to[0]: receiver:zz names no receiver")


@pytest.mark.parametrize(
    ("section", "said"),
    [
        ('[receiver.Chat]\nkind = "slack"\nurl_file = "/x"', "$.receiver: 'Chat' cannot name"),
        ('[receiver.chat]\nkind = "sms"\nurl_file = "/x"', "$.receiver.chat.kind: invalid value"),
        (
            '[receiver.chat]\nkind = "slack"\nurl = "https://x"',
            "$.receiver.chat: object contains unknown field url",
        ),
        (
            '[receiver.chat]\nkind = "slack"',
            "$.receiver.chat: object missing required field url_file",
        ),
        (
            '[receiver.chat]\nkind = "slack"\nurl_file = "x"',
            "$.receiver.chat: url_file 'x' is not an absolute path",
        ),
        (
            '[receiver.hook]\nkind = "webhook"\nurl = "http://hooks.example.org/x"\n'
            'secret_file = "/k"',
            "$.receiver.hook: url is http:// to hooks.example.org, which would"
            " send the alerts unencrypted: use https://, or set allow_plaintext = true",
        ),
        (
            '[receiver.hook]\nkind = "webhook"\nurl = "https://u:p@hooks.example.org/x"\n'
            'secret_file = "/k"',
            "no user or password in the URL",
        ),
        ('[receiver.hook]\nkind = "webhook"\nsecret_file = "/k"', "url or url_file"),
        ('[receiver.ntfy]\nkind = "ntfy"\ntopic = "a/b"', "$.receiver.ntfy.topic: expected str"),
        (
            '[receiver.ntfy]\nkind = "ntfy"\ntopic = "a"\nusername = "u"',
            "username and password_file go together",
        ),
        (
            '[receiver.tg]\nkind = "telegram"\ntoken_file = "/t"\nchat_id = "somebody"',
            "$.receiver.tg.chat_id",
        ),
    ],
)
def test_a_bad_receiver_names_its_key(section: str, said: str) -> None:
    assert said in config_error(section)


def test_receiver_names_are_lower_case_so_their_case_never_matters() -> None:
    config = parse_config(
        '[receiver.chat-ops_1]\nkind = "slack"\nurl_file = "/etc/lw/slack.url"\n'
        '[[route]]\nto = ["Ops@Example.org", "receiver:chat-ops_1"]\n'
    )
    chosen = first_routes(config.route, event())
    assert list(chosen) == ["ops@example.org", "receiver:chat-ops_1"]
    assert reference("receiver:chat-ops_1") == "chat-ops_1" and reference("ops@x.org") is None
    assert digest_recipients(config.route) == ("ops@example.org", "receiver:chat-ops_1")


def test_the_policy_decides_a_receiver_as_a_recipient_with_its_own_flood_budget() -> None:
    config = parse_config(
        '[receiver.chat]\nkind = "slack"\nurl_file = "/etc/lw/slack.url"\n'
        '[policy]\nflood_max = 2\n[[route]]\nto = ["ops@example.org", "receiver:chat"]\n'
        '[[silence]]\nuntil = 2030-01-01T00:00:00Z\nusers = ["alice"]\nto = ["receiver:chat"]\n'
    )
    decisions = Policy(config).decide(enriched(), PolicyState(), T0)
    assert [(d.recipient, d.action.value) for d in decisions] == [
        ("ops@example.org", "immediate"), ("receiver:chat", "silenced")]  # fmt: skip


# --- secrets and URLs -------------------------------------------------------------------


def receiver(text: str) -> tuple[str, object]:
    config = parse_config(text)
    [(name, found)] = config.receiver.items()
    return name, found


def test_a_secret_url_is_read_from_a_0600_file_and_never_shown(tmp_path: Path) -> None:
    path = secret(tmp_path, "slack.url", SLACK_URL)
    name, found = receiver(f'[receiver.chat]\nkind = "slack"\nurl_file = "{path}"\n')
    resolved = resolve(name, found)  # type: ignore[arg-type]
    assert resolved.url == SLACK_URL and resolved.shown == "https://hooks.slack.com"
    assert resolved.secrets == (SLACK_URL,)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as caught:
        resolve(name, found)  # type: ignore[arg-type]
    assert str(caught.value).startswith("$.receiver.chat.url_file: ")
    assert "readable by group or others" in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "url", "said"),
    [
        (
            "teams",
            "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/x/y",
            "https://contoso.webhook.office.com is an Office 365 connector URL, which Microsoft"
            " retired: in Teams, add a Workflows webhook",
        ),
        ("teams", "https://outlook.office.com/webhook/abc/IncomingWebhook/x/y", "retired"),
        ("slack", "https://hooks.slack.com/triggers/T/1/x", "no Slack incoming-webhook URL"),
        ("discord", "https://discord.com/api/channels/1/messages", "no Discord webhook URL"),
        ("mattermost", "https://chat.example.org/", "has no webhook path"),
        ("slack", "hooks.slack.com/services/T/B/XXXXXXXX", "does not hold an https:// URL"),
        (
            "mattermost",
            "http://chat.example.org/hooks/abcdefghijkl",
            "$.receiver.r.url_file is"
            " http:// to chat.example.org, which would send its credentials and the alerts"
            " unencrypted",
        ),
    ],
)
def test_a_secret_urls_shape_and_transport_are_checked(
    tmp_path: Path, kind: str, url: str, said: str
) -> None:
    path = secret(tmp_path, "url", url)
    name, found = receiver(f'[receiver.r]\nkind = "{kind}"\nurl_file = "{path}"\n')
    with pytest.raises(ConfigError) as caught:
        resolve(name, found)  # type: ignore[arg-type]
    assert said in str(caught.value)
    path_part = url.split("://", 1)[-1].split("/", 1)[-1]
    if len(path_part) > 4:
        assert path_part not in str(caught.value)  # only scheme://host is ever shown


def test_plain_http_is_fine_on_loopback_and_where_allowed(tmp_path: Path) -> None:
    path = secret(tmp_path, "url", "http://127.0.0.1:8065/hooks/abcdefghijkl")
    name, found = receiver(f'[receiver.r]\nkind = "mattermost"\nurl_file = "{path}"\n')
    assert resolve(name, found).shown == "http://127.0.0.1:8065"  # type: ignore[arg-type]
    remote = secret(tmp_path, "remote", "http://chat.example.org/hooks/abcdefghijkl")
    name, found = receiver(
        f'[receiver.r]\nkind = "mattermost"\nurl_file = "{remote}"\nallow_plaintext = true\n'
    )
    assert resolve(name, found).shown == "http://chat.example.org"  # type: ignore[arg-type]
    ca = f'[receiver.r]\nkind = "mattermost"\nurl_file = "{path}"\nca_file = "/etc/ca.pem"\n'
    with pytest.raises(ConfigError, match="ca_file is set but the URL is plain http://"):
        resolve(*receiver(ca))  # type: ignore[arg-type]


def test_webhook_signing_keys_several_lines_each_a_whsec_key(tmp_path: Path) -> None:
    good = "whsec_" + "a" * 44
    keys = secret(tmp_path, "keys", f"{good}\n\nwhsec_{'b' * 44}")
    text = (
        f'[receiver.h]\nkind = "webhook"\nurl = "https://h.example.org/x"\nsecret_file = "{keys}"\n'
    )
    resolved = resolve(*receiver(text))  # type: ignore[arg-type]
    assert resolved.keys == (good, f"whsec_{'b' * 44}")
    bad = secret(tmp_path, "bad", f"{good}\nhunter2")
    with pytest.raises(ConfigError, match=r"\$.receiver.h.secret_file: line 2 is no signing key"):
        resolve(*receiver(text.replace(keys, bad)))  # type: ignore[arg-type]


def test_telegrams_token_goes_in_the_path_and_ntfys_in_a_header(tmp_path: Path) -> None:
    token = secret(tmp_path, "token", "123:ABC")
    tg = resolve(
        *receiver(  # type: ignore[arg-type]
            f'[receiver.tg]\nkind = "telegram"\ntoken_file = "{token}"\nchat_id = -100\n'
        )
    )
    assert tg.url == "https://api.telegram.org/bot123:ABC/sendMessage"
    assert tg.shown == "https://api.telegram.org" and tg.secrets == ("123:ABC",)
    ntfy = resolve(
        *receiver(  # type: ignore[arg-type]
            f'[receiver.n]\nkind = "ntfy"\ntopic = "alerts"\ntoken_file = "{token}"\n'
        )
    )
    assert (ntfy.url, ntfy.bearer) == ("https://ntfy.sh", "123:ABC")
    basic = resolve(
        *receiver(  # type: ignore[arg-type]
            f'[receiver.n]\nkind = "ntfy"\ntopic = "a"\nusername = "lw"\npassword_file = "{token}"'
        )
    )
    assert basic.basic == ("lw", "123:ABC")


# --- HTTP failures, classified where they happen ------------------------------------------


def answer(status: int, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, httpx.Headers(headers or {}), b"")


def none(_answer: Answer) -> float | None:
    return None


@pytest.mark.parametrize(
    ("status", "headers", "kind", "said"),
    [
        (200, {}, None, ""),
        (202, {}, None, ""),
        (204, {}, None, ""),
        (429, {"Retry-After": "3"}, RetryLater, "r: 429 Too Many Requests, retry after 3 s"),
        (429, {}, TransientSendError, "r: 429 Too Many Requests"),
        (500, {}, TransientSendError, "r: 500 Internal Server Error"),
        (503, {"Retry-After": "120"}, RetryLater, "r: 503 Service Unavailable, retry after 120 s"),
        (
            301,
            {"Location": "https://x/secret"},
            PermanentSendError,
            "r: 301 Moved Permanently: loginwatch follows no redirect (has the URL moved?)",
        ),
        (400, {}, PermanentSendError, "r: 400 Bad Request"),
        (404, {}, PermanentSendError, "r: 404 Not Found"),
        (410, {}, PermanentSendError, "r: 410 Gone"),
    ],
)
def test_an_answer_is_classified_from_its_status(
    status: int, headers: dict[str, str], kind: type | None, said: str
) -> None:
    found = classify_answer(answer(status, headers), "r", none)
    if kind is None:
        assert found is None
    else:
        assert type(found) is kind and str(found) == said


def test_retry_after_reads_seconds_and_dates_and_is_bounded() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert retry_after("5", now) == 5
    assert retry_after("Thu, 26 Nov 2026 12:00:30 GMT", now) == 30
    assert retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now) == 0
    assert retry_after("99999999", now) == 86400
    assert retry_after("soon", now) is None and retry_after(None, now) is None


def test_a_failure_without_an_answer_is_transient_and_names_no_url() -> None:
    request = httpx.Request("POST", "https://hooks.slack.com/services/T/B/SECRET")
    for error, said in (
        (httpx.ConnectTimeout("x", request=request), "timed out connecting"),
        (httpx.ReadTimeout("x", request=request), "timed out waiting for the answer"),
        (httpx.RemoteProtocolError("x", request=request), "connection dropped before the answer"),
    ):
        found = classify_error(error, "receiver:chat (slack)")
        assert isinstance(found, TransientSendError) and said in str(found)
        assert "SECRET" not in str(found)


def test_every_secret_is_scrubbed_from_a_reason() -> None:
    resolved = Resolved("t", "telegram", "https://api.telegram.org/bot1:A/sendMessage",
                        "https://api.telegram.org", ("1:A/b c",))  # fmt: skip
    poster = Poster(resolved, ca_file=None, timeout=1, connect_timeout=1)
    try:
        for text in ("x 1:A/b c y", "x 1%3AA%2Fb%20c y", "x 1:A/b%20c y"):
            assert poster.scrubbed(PermanentSendError(text)).args == ("x *** y",)
        kept = poster.scrubbed(RetryLater("wait 1:A/b c", 3))
        assert isinstance(kept, RetryLater) and kept.retry_after == 3 and "1:A" not in str(kept)
    finally:
        poster.close()


def test_flood_control_counts_a_receiver_on_its_own_budget() -> None:
    from consumer.core.decisions import FloodCount, flood_host

    config = parse_config(
        '[receiver.chat]\nkind = "slack"\nurl_file = "/etc/lw/slack.url"\n'
        '[policy]\nflood_max = 2\n[[route]]\nto = ["ops@example.org", "receiver:chat"]\n'
    )
    login = enriched()
    full = {("receiver:chat", flood_host(login.event.host), "login"): FloodCount(sent=2)}
    decisions = Policy(config).decide(login, PolicyState(hosts=full), T0)
    assert [(d.recipient, d.action.value) for d in decisions] == [
        ("ops@example.org", "immediate"), ("receiver:chat", "burst")]  # fmt: skip
