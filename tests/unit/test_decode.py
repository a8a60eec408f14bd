"""The decode stage: what is accepted, and the reason for what is not (unit, no broker)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from consumer.broker.delivery import Delivery
from consumer.broker.retries import republish_headers
from consumer.core.display import quoted
from consumer.core.identity import Identity, effective_user
from consumer.stages.decode import Decoder, Incoming
from schemas import topology
from schemas.errors import DecodeError
from schemas.event import MAX_BODY, encode
from schemas.topology import HEADER_ORIGIN, HEADER_USER_ID
from tests.support.factories import event

HOSTS = {"relay": ("dmz-*", "edge")}
DEFAULT = Identity(own_user="central", host_users=HOSTS)
STRICT = Identity(require_user_id=True, own_user="central", host_users=HOSTS)


def refusal(identity: Identity, host: str, user_id: str | None) -> str | None:
    """The dead queue's reason for ``host`` published by ``user_id``, or None (accepted)."""
    body = encode(event(host=host))
    try:
        Decoder(identity)(Incoming(body, user_id))
    except DecodeError as exc:
        assert exc.data == body
        return exc.reason
    return None


def may_not(user: str, host: str) -> str:
    return f"user_id {quoted(user, 80)} may not speak for host {quoted(host, 80)}"


NO_USER = "no user_id: host events must carry their broker user"

# (host in the event, user_id on arrival, reason with the default config, with strict)
CASES: list[tuple[str, str | None, str | None, str | None]] = [
    ("web1", "host-web1", None, None),
    ("WEB1", "host-web1", None, None),  # host names are case-insensitive
    ("dmz-3", "relay", None, None),
    ("DMZ-3", "relay", None, None),
    ("edge", "relay", None, None),
    # The attack: host-alpha publishes host = "bravo".
    ("bravo", "host-alpha", may_not("host-alpha", "bravo"), may_not("host-alpha", "bravo")),
    ("web1", "relay", may_not("relay", "web1"), may_not("relay", "web1")),
    # No user_id, or an empty one: the hook always sets it.
    ("web1", None, NO_USER, NO_USER),
    ("web1", "", NO_USER, NO_USER),
    # The central user speaks for any host, except in strict mode.
    ("web1", "central", None, may_not("central", "web1")),
    ("anything at all", "central", None, may_not("central", "anything at all")),
    # A user that is neither a host user, a relay nor ours speaks for nobody.
    ("web1", "admin", may_not("admin", "web1"), may_not("admin", "web1")),
    # Look-alikes and tricks: never the host user's name.
    ("web1.", "host-web1", may_not("host-web1", "web1."), may_not("host-web1", "web1.")),
    (" web1", "host-web1", may_not("host-web1", " web1"), may_not("host-web1", " web1")),
    ("web1\n", "host-web1", may_not("host-web1", "web1\n"), may_not("host-web1", "web1\n")),
    (
        "w\u0435b1",
        "host-web1",
        may_not("host-web1", "w\u0435b1"),
        may_not("host-web1", "w\u0435b1"),
    ),
    # KELVIN SIGN lower-cases to an ASCII k: still not host-kilo's name.
    (
        "\u212ailo",
        "host-kilo",
        may_not("host-kilo", "\u212ailo"),
        may_not("host-kilo", "\u212ailo"),
    ),
    (
        "web1\r\nX: y",
        "host-web1",
        may_not("host-web1", "web1\r\nX: y"),
        may_not("host-web1", "web1\r\nX: y"),
    ),
    # A broker user in other case is another user: `host add` makes lower-case ones only.
    ("bravo", "HOST-bravo", may_not("HOST-bravo", "bravo"), may_not("HOST-bravo", "bravo")),
    ("bravo", "host-Bravo", may_not("host-Bravo", "bravo"), may_not("host-Bravo", "bravo")),
    ("bravo", "host-bravo.", may_not("host-bravo.", "bravo"), may_not("host-bravo.", "bravo")),
    # A host name with glob characters matches a relay's glob only as a DNS name would.
    ("dmz-*", "relay", may_not("relay", "dmz-*"), may_not("relay", "dmz-*")),
    ("dmz-[a]", "relay", may_not("relay", "dmz-[a]"), may_not("relay", "dmz-[a]")),
    ("[e]dge", "relay", may_not("relay", "[e]dge"), may_not("relay", "[e]dge")),
    ("host-web1", "host-host-web1", None, None),
]


@pytest.mark.parametrize(("host", "user_id", "default", "strict"), CASES)
def test_identity_rule(
    host: str, user_id: str | None, default: str | None, strict: str | None
) -> None:
    assert refusal(DEFAULT, host, user_id) == default
    assert refusal(STRICT, host, user_id) == strict


def test_a_host_user_reports_its_own_name_whatever_case_it_sent() -> None:
    decode = Decoder(DEFAULT)
    for host in ("web1", "Web1", "WEB1"):
        assert decode(Incoming(encode(event(host=host)), "host-web1")).host == "web1"
    assert decode(Incoming(encode(event(host="Dmz-3")), "relay")).host == "dmz-3"


def test_strict_mode_lets_the_central_user_speak_where_host_users_maps_it() -> None:
    strict = Identity(require_user_id=True, own_user="central", host_users={"central": ("lab-*",)})
    assert refusal(strict, "lab-1", "central") is None
    assert refusal(strict, "web1", "central") == may_not("central", "web1")


def test_an_oversized_body_is_refused_on_its_length() -> None:
    # A valid event followed by one long extra item, which a decoder skips: only the
    # limit refuses it.
    fields = msgspec.msgpack.decode(encode(event(host="web1")))
    body = msgspec.msgpack.encode([*fields, "x" * MAX_BODY])
    with pytest.raises(DecodeError) as caught:
        Decoder(DEFAULT)(Incoming(body, "host-web1"))
    assert caught.value.reason == (
        f"undecodable event: body of {len(body)} bytes is over the {MAX_BODY}-byte limit"
    )


def test_undecodable_body_names_the_problem() -> None:
    with pytest.raises(DecodeError) as caught:
        Decoder(Identity())(Incoming(b"\xc1garbage", "guest"))
    assert caught.value.reason.startswith("undecodable event: ")


def test_a_body_is_checked_before_the_user_id() -> None:
    with pytest.raises(DecodeError) as caught:
        Decoder(Identity())(Incoming(b"\xc1garbage", None))
    assert caught.value.reason.startswith("undecodable event: ")


@pytest.mark.parametrize(
    ("user_id", "headers", "expected"),
    [
        ("host-web1", {}, "host-web1"),
        # A host cannot claim a carried user: only the central user's copies carry one.
        ("host-web1", {HEADER_USER_ID: "host-web2"}, "host-web1"),
        ("central", {HEADER_USER_ID: "host-web1"}, "host-web1"),
        ("central", {HEADER_USER_ID: b"host-web1"}, "host-web1"),
        # A copy of a message that arrived without a user_id says so: "" is none.
        ("central", {HEADER_USER_ID: ""}, None),
        ("central", {HEADER_USER_ID: 7}, None),
        # A copy an older version made of such a message carried only the origin.
        ("central", {HEADER_ORIGIN: topology.ALERTS_QUEUE}, None),
        ("central", {}, "central"),
        (None, {HEADER_USER_ID: "host-web1"}, None),
        ("", {HEADER_USER_ID: "host-web1"}, None),
    ],
)
def test_effective_user(user_id: str | None, headers: dict[str, object], expected: str) -> None:
    assert effective_user(user_id, headers, "central") == expected


def delivery(user_id: str | None, headers: dict[str, Any]) -> Delivery:
    return Delivery(
        1, encode(event(host="bravo")), "login", False, user_id=user_id, headers=headers
    )


FORGED = {
    HEADER_USER_ID: "host-bravo",
    topology.HEADER_ATTEMPT: 99,
    topology.HEADER_ORIGIN: topology.DEAD_QUEUE,
    topology.HEADER_REASON: "replayed by ops, fine",
    topology.HEADER_DEAD_AT: 1,
    "x-death": [{"queue": topology.DIGEST_QUEUE, "reason": "expired"}],
    "x-anything": "else",
}


@pytest.mark.parametrize("user_id", [None, "", "host-alpha"])
def test_a_copy_of_a_hosts_message_keeps_none_of_its_headers(user_id: str | None) -> None:
    headers = republish_headers(delivery(user_id, FORGED), "central", extra=1)
    assert headers == {HEADER_USER_ID: user_id or "", "extra": 1}
    # And the copy, under the central user, decodes as the host it came from.
    copy = Incoming(encode(event(host="bravo")), effective_user("central", headers, "central"))
    with pytest.raises(DecodeError):
        Decoder(DEFAULT)(copy)


def test_a_copy_of_a_copy_keeps_the_identity_of_the_first_arrival() -> None:
    first = republish_headers(delivery("host-alpha", FORGED), "central")
    second = republish_headers(delivery("central", {**first, "x-death": []}), "central")
    assert second == {HEADER_USER_ID: "host-alpha"}
    ours = republish_headers(delivery("central", {}), "central")
    assert ours == {HEADER_USER_ID: "central"}
