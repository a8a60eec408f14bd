"""The decode stage: what is accepted, and the reason for what is not (unit, no broker)."""

from __future__ import annotations

import pytest

from consumer.stages.decode import Decoder, Identity, Incoming, effective_user
from schemas.errors import DecodeError
from schemas.event import encode
from schemas.topology import HEADER_USER_ID
from tests.factories import event

STRICT = Identity(require_user_id=True, own_user="central", host_users={"relay": ("dmz-*", "edge")})


@pytest.mark.parametrize(
    ("host", "user_id", "reason"),
    [
        ("web1", "host-web1", None),
        ("WEB1", "host-web1", None),  # host names are case-insensitive
        ("dmz-3", "relay", None),
        ("edge", "relay", None),
        ("web1", None, "no user_id: host events must carry their broker user"),
        ("web1", "host-web2", "user_id 'host-web2' may not speak for host 'web1'"),
        ("web1", "relay", "user_id 'relay' may not speak for host 'web1'"),
        ("web1", "central", "user_id 'central' may not speak for host 'web1'"),
        (
            "web1\r\nX: y",
            "host-web1",
            "user_id 'host-web1' may not speak for host 'web1\\r\\nX: y'",
        ),
    ],
)
def test_identity_rule(host: str, user_id: str | None, reason: str | None) -> None:
    body = encode(event(host=host))
    decode = Decoder(STRICT)
    if reason is None:
        assert decode(Incoming(body, user_id)).host == host
    else:
        with pytest.raises(DecodeError) as caught:
            decode(Incoming(body, user_id))
        assert caught.value.reason == reason
        assert caught.value.data == body


def test_without_host_users_any_user_id_is_fine() -> None:
    body = encode(event(host="web1"))
    assert Decoder(Identity())(Incoming(body, None)).host == "web1"


def test_undecodable_body_names_the_problem() -> None:
    with pytest.raises(DecodeError) as caught:
        Decoder(Identity())(Incoming(b"\xc1garbage"))
    assert caught.value.reason.startswith("undecodable event: ")


@pytest.mark.parametrize(
    ("user_id", "headers", "expected"),
    [
        ("host-web1", {}, "host-web1"),
        # A host cannot claim a carried user: only the central user's copies carry one.
        ("host-web1", {HEADER_USER_ID: "host-web2"}, "host-web1"),
        ("central", {HEADER_USER_ID: "host-web1"}, "host-web1"),
        ("central", {HEADER_USER_ID: b"host-web1"}, "host-web1"),
        ("central", {}, "central"),
        (None, {HEADER_USER_ID: "host-web1"}, None),
    ],
)
def test_effective_user(user_id: str | None, headers: dict[str, object], expected: str) -> None:
    assert effective_user(user_id, headers, "central") == expected
