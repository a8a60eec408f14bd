"""The wire contract: size, round trip, hostile values, evolution, validation."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import msgspec
import pytest

from producer.build import build_event
from schemas.errors import DecodeError
from schemas.event import LoginEvent, Outcome, PamType, encode, escape_bytes, unescape
from schemas.wire import decode_event as decode
from tests.support.hookrun import ED25519_FINGERPRINT, PAM_ENV

UTC = timezone.utc  # datetime.UTC is 3.11's; these tests run on 3.9 too


def captured(**overrides: bytes) -> dict[str, bytes]:
    items = {k: v.encode() for k, v in PAM_ENV.items()}
    items |= {"LW_ID": os.urandom(16).hex().encode(), "LW_TIME": b"1795669046385507837"}
    items |= {"LW_NODE": b"web-01", "LW_OUTCOME": b""}
    items.update(overrides)
    return items


def test_typical_event_is_compact_and_round_trips() -> None:
    event = build_event(captured(), host_name=None)
    wire = encode(event)
    assert len(wire) <= 160, len(wire)
    assert decode(wire) == event
    assert event.user == "alice"
    assert event.host == "web-01"
    assert (event.client_ip, event.client_port) == ("192.0.2.10", 50022)
    assert (event.rhost, event.remote_host) == ("", "192.0.2.10")
    assert (event.server_ip, event.server_port) == ("198.51.100.5", 22)
    assert event.auth_method == "publickey"
    assert event.key_type == "ssh-ed25519"
    assert event.fingerprint == ED25519_FINGERPRINT
    assert event.pam_type is PamType.OPEN_SESSION
    assert event.outcome is Outcome.SUCCESS
    assert event.kind == "login"
    assert event.time == datetime(2026, 11, 26, 4, 57, 26, 385508, tzinfo=UTC)


def test_a_remote_host_name_is_kept_when_it_differs_from_the_address() -> None:
    event = build_event(captured(PAM_RHOST=b"attacker.example"), host_name=None)
    assert (event.rhost, event.remote_host) == ("attacker.example", "attacker.example")


def test_the_key_itself_never_travels() -> None:
    wire = encode(build_event(captured(), host_name=None))
    assert b"AAAAC3NzaC1lZDI1NTE5" not in wire


@pytest.mark.parametrize(
    "user",
    [
        b"evil\r\nBcc: x@y",
        b"{{ 7*7 }}{% for x in y %}",
        b"<script>alert(1)</script>",
        b"nul\x00byte-free-but-\x1b[31mansi",
        "bidi\u202eevil".encode(),
    ],
)
def test_hostile_text_is_kept_verbatim_for_the_renderer_to_neutralise(user: bytes) -> None:
    event = decode(encode(build_event(captured(PAM_USER=user), host_name=None)))
    assert event.user == user.decode()
    assert event.escaped == () and event.truncated == ()


def test_invalid_utf8_survives_losslessly() -> None:
    raw = b"caf\xe9\\x41\xff"
    event = decode(encode(build_event(captured(PAM_USER=raw), host_name=None)))
    assert event.escaped == ("user",)
    assert event.user == "caf\\xe9\\\\x41\\xff"
    assert unescape(event.user) == raw


def test_huge_values_are_cut_to_the_bound_and_flagged() -> None:
    event = build_event(captured(PAM_USER=b"u" * (1 << 20), PAM_RHOST=b"h" * 5000), None)
    assert len(event.user) == 256 and len(event.rhost) == 253
    assert event.truncated == ("user", "rhost")
    assert len(encode(event)) < 1024


@pytest.mark.parametrize(
    "connection",
    [b"", b"garbage", b"1.2.3.4 99999 5.6.7.8 22", b"a b c d", b"1.2.3.4 -1 5.6.7.8 22"],
)
def test_malformed_ssh_connection_leaves_addresses_empty(connection: bytes) -> None:
    event = build_event(captured(SSH_CONNECTION=connection), None)
    assert (event.client_ip, event.client_port, event.server_port) == ("", 0, 0)


@pytest.mark.parametrize(
    ("auth_info", "method", "fingerprint"),
    [
        (b"", "", ""),
        (b"password\n", "password", ""),
        (b"publickey ssh-ed25519 !!notbase64!!\n", "publickey", ""),
        (b"keyboard-interactive\npublickey ssh-rsa AAAA\n", "keyboard-interactive+publickey", ""),
    ],
)
def test_auth_info_parsing(auth_info: bytes, method: str, fingerprint: str) -> None:
    event = build_event(captured(SSH_AUTH_INFO_0=auth_info), None)
    assert event.auth_method == method
    if not fingerprint:
        assert event.fingerprint == "" or event.auth_method.endswith("publickey")


def test_failure_outcome_and_kind() -> None:
    event = build_event(captured(PAM_TYPE=b"auth", LW_OUTCOME=b"failure"), None)
    assert (event.outcome, event.kind) == (Outcome.FAILURE, "failure")
    unknown = build_event(captured(PAM_TYPE=b"auth"), None)
    assert (unknown.outcome, unknown.kind) == (Outcome.UNKNOWN, "auth")


def test_configured_host_name_wins_over_the_node_name() -> None:
    assert build_event(captured(), host_name="db-7").host == "db-7"


class OldLoginEvent(msgspec.Struct, frozen=True, array_like=True, tag=1, kw_only=True):
    """What an older hook sent: a prefix of today's fields."""

    id: bytes
    time: datetime
    host: str
    service: str = ""


class NewerLoginEvent(LoginEvent, frozen=True, array_like=True, tag=1, kw_only=True):
    """What a newer hook may send: one more field appended."""

    future_field: str = "x"


def test_old_and_new_event_versions_decode() -> None:
    old = OldLoginEvent(id=b"\x01" * 16, time=datetime.now(UTC), host="old", service="sshd")
    event = decode(msgspec.msgpack.encode(old))
    assert (event.host, event.user, event.dropped) == ("old", "", 0)
    newer = NewerLoginEvent(id=b"\x02" * 16, time=datetime.now(UTC), host="new", user="bob")
    assert decode(msgspec.msgpack.encode(newer)).user == "bob"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xc1garbage", "malformed"),
        (b"", "truncated"),
        (msgspec.msgpack.encode([1, b"short", "2026-01-01T00:00:00Z", "h"]), "$[1]"),
        (msgspec.msgpack.encode([1, b"\x01" * 16, "not a time", "h"]), "$[2]"),
        (msgspec.msgpack.encode([1, b"\x01" * 16, "2026-01-01T00:00:00Z", "h" * 300]), "$[3]"),
        (msgspec.msgpack.encode([9, b"\x01" * 16, "2026-01-01T00:00:00Z", "h"]), "$[0]"),
    ],
)
def test_invalid_bodies_raise_decode_error_with_reason_and_bytes(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body)
    assert reason in info.value.reason.lower() or reason in info.value.reason
    assert info.value.data == body


def test_escape_bytes_passes_valid_utf8_untouched() -> None:
    assert escape_bytes("DOMAIN\\jörg".encode()) == ("DOMAIN\\jörg", False)
