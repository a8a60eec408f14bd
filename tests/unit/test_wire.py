"""The wire's tagged union: the compact event beside the first form, heartbeats, logouts,
the kinds of su, sudo and console sessions, and the sizes a fleet pays per login."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from producer.build import build_event
from schemas import compact as cp
from schemas import topology, wire
from schemas.compact import CompactEvent, compact, expand, pack_address, unpack_address
from schemas.errors import DecodeError
from schemas.event import KINDS, LoginEvent, Outcome, PamType, encode, event_kind
from schemas.records import Heartbeat, Logout, LogoutEnd, LogoutSource
from tests.support.hookrun import PAM_ENV

UTC = timezone.utc  # datetime.UTC is 3.11's; these tests run on 3.9 too
T0 = datetime(2026, 12, 7, 8, 40, tzinfo=UTC)
LONG_HOST = "web-01.prod.example.com"


def key_login(host: str = LONG_HOST, /, **fields: object) -> LoginEvent:
    items = {k: v.encode() for k, v in PAM_ENV.items()}
    items.update({"LW_ID": os.urandom(16).hex().encode(), "LW_TIME": b"1796632800000000000",
                  "LW_NODE": b"web-01", "LW_OUTCOME": b""})  # fmt: skip
    event = build_event(items, host_name=host)
    return msgspec.structs.replace(event, **fields) if fields else event


LINKED = {"audit_session": 4711, "login_uid": 1000, "session_pid": 123456,
          "session_start": 98765432}  # fmt: skip


def test_a_key_login_from_a_long_fqdn_fits_160_bytes_in_the_compact_form() -> None:
    event = key_login(**LINKED)
    body = wire.encode(compact(event))
    assert len(body) <= 160, len(body)
    assert len(encode(event)) > 160  # the first form did not: the reason for the new tag
    assert wire.decode(body) == event
    assert wire.decode_event(body) == event


def test_the_first_form_still_decodes_as_it_did() -> None:
    event = key_login("web-01")
    assert wire.decode(encode(event)) == event
    assert wire.decode_event(encode(event)).kind == "login"


def test_an_event_of_a_hook_before_the_link_fields_decodes_with_their_defaults() -> None:
    # The first form as a hook before this release encoded it: 25 items, no link fields.
    full = msgspec.msgpack.decode(encode(key_login("web-01", **LINKED)))
    old = msgspec.msgpack.encode(full[:-4])
    event = wire.decode_event(old)
    assert (event.audit_session, event.login_uid, event.session_pid) == (None, None, 0)
    assert event.user == "alice"


@pytest.mark.parametrize(
    ("client", "packed"),
    [
        ("192.0.2.10", 4),
        ("2001:db8::10", 16),
        ("fe80::1%eth0", 0),  # scoped: as text
        ("2001:DB8::10", 0),  # does not read back the same: as text
        ("not an address", 0),
        ("", 0),
    ],
)
def test_addresses_travel_as_raw_bytes_or_as_text_and_come_back_the_same(
    client: str, packed: int
) -> None:
    raw, text = pack_address(client)
    assert len(raw) == packed
    assert unpack_address(raw, text) == client
    event = key_login(client_ip=client)
    assert wire.decode_event(wire.encode(compact(event))).client_ip == client


def test_unknown_services_methods_and_key_types_travel_as_text() -> None:
    event = key_login(service="my-vpn", auth_method="publickey+password+totp",
                      key_type="ssh-new-type")  # fmt: skip
    small = compact(event)
    assert (small.service, small.auth_method, small.key_type) == (
        "my-vpn", "publickey+password+totp", "ssh-new-type")  # fmt: skip
    assert expand(small) == event
    assert compact(key_login()).service == cp.SERVICES.index("sshd")


def test_a_code_this_side_does_not_know_is_refused_with_the_field() -> None:
    small = msgspec.structs.asdict(compact(key_login()))
    body = wire.encode(CompactEvent(**{**small, "key_type": 0}))
    raw = msgspec.msgpack.decode(body)
    raw[16] = 200  # the key type's code: no table has it
    with pytest.raises(DecodeError, match=r"key_type: code 200"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_raw_addresses_of_another_length_are_refused() -> None:
    raw = msgspec.msgpack.decode(wire.encode(compact(key_login())))
    raw[11] = b"\x01\x02\x03"  # client_ip
    with pytest.raises(DecodeError, match=r"client_ip: 3 raw bytes"):
        wire.decode(msgspec.msgpack.encode(raw))


def test_a_heartbeat_decodes_as_one_and_is_no_event() -> None:
    beat = Heartbeat(id=os.urandom(16), time=T0, host=LONG_HOST, hook_version="0.3.0",
                     spool_depth=3, dropped=2, addresses=(pack_address("192.0.2.10")[0],),
                     goodbye=True, why="uninstall")  # fmt: skip
    body = wire.encode(beat)
    assert len(body) < 100
    assert wire.decode(body) == beat
    assert wire.message_type(beat) == topology.HEARTBEAT_TYPE
    with pytest.raises(DecodeError, match="a heartbeat message, not a login event"):
        wire.decode_event(body)


def test_a_logout_decodes_with_its_length_and_kind() -> None:
    logout = Logout(id=os.urandom(16), time=T0 + timedelta(minutes=7, seconds=3), host="web-01",
                    user="alice", tty="pts/0", login_time=T0,
                    client_ip=pack_address("192.0.2.10")[0], source=LogoutSource.WTMP,
                    end=LogoutEnd.LOGOUT, session_pid=4242)  # fmt: skip
    found = wire.decode(wire.encode(logout))
    assert found == logout
    assert isinstance(found, Logout)
    assert found.length == 423.0
    assert found.kind == "logout"
    assert msgspec.structs.replace(logout, service="login").kind == "console-end"
    assert wire.message_type(found) == topology.LOGOUT_TYPE
    with pytest.raises(DecodeError, match="a logout message"):
        wire.decode_event(wire.encode(logout))


def test_an_unknown_tag_is_refused() -> None:
    with pytest.raises(DecodeError, match="tag"):
        wire.decode(msgspec.msgpack.encode([99, b"x"]))


@pytest.mark.parametrize(
    ("service", "pam_type", "outcome", "kind"),
    [
        ("sshd", PamType.OPEN_SESSION, Outcome.SUCCESS, "login"),
        ("sshd", PamType.CLOSE_SESSION, Outcome.SUCCESS, "logout"),
        ("sshd", PamType.AUTH, Outcome.FAILURE, "failure"),
        ("", PamType.OPEN_SESSION, Outcome.SUCCESS, "login"),  # an old test event's
        ("sudo", PamType.OPEN_SESSION, Outcome.SUCCESS, "sudo"),
        ("sudo-i", PamType.OPEN_SESSION, Outcome.SUCCESS, "sudo"),
        ("sudo", PamType.CLOSE_SESSION, Outcome.SUCCESS, "sudo-end"),
        ("sudo", PamType.AUTH, Outcome.FAILURE, "sudo-failure"),
        ("su", PamType.OPEN_SESSION, Outcome.SUCCESS, "su"),
        ("su-l", PamType.OPEN_SESSION, Outcome.SUCCESS, "su"),
        ("login", PamType.OPEN_SESSION, Outcome.SUCCESS, "console"),
        ("login", PamType.CLOSE_SESSION, Outcome.SUCCESS, "console-end"),
        ("su", PamType.ACCOUNT, Outcome.UNKNOWN, "account"),
    ],
)
def test_su_sudo_and_console_sessions_are_kinds_of_their_own(
    service: str, pam_type: PamType, outcome: Outcome, kind: str
) -> None:
    assert event_kind(pam_type, outcome, service) == kind
    assert kind in KINDS
    event = key_login(service=service, pam_type=pam_type, outcome=outcome)
    assert wire.decode_event(wire.encode(compact(event))).kind == kind


def test_every_message_type_has_a_routing_key_word() -> None:
    assert set(topology.MESSAGE_TYPES) == {"event", "heartbeat", "logout"}
    assert topology.routing_key("host-web1", topology.HEARTBEAT_TYPE) == "host-web1.heartbeat"
