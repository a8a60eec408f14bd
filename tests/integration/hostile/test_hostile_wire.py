"""Hostile bodies and headers on the wire (issue 9 items 2, 6, 7, 8).

- Every numeric field has a bound in the type, and the bounds keep aggregates in their
  columns; a body longer than any valid event is refused on its length.
- Whatever a body holds (too deep, too long, wrong types, any bytes), decoding ends in a
  ``LoginEvent`` or a ``DecodeError`` with a reason: never another exception.
- ``dead list`` describes any message, whatever its headers, in one printable line, and
  ``--id`` matches only ids we computed.
- On the real broker: oversized and deeply nested bodies go dead at once with the
  reason; ``dead list`` shows them and a host-chosen message id stays inert; ``digest
  --once`` survives them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consumer.broker.deadletters import describe, is_id, list_dead, selector
from consumer.broker.delivery import Delivery
from consumer.commands.dead import _line
from consumer.core.identity import Identity
from consumer.stages.decode import Decoder, Incoming
from producer.build import build_event
from schemas import event as ev
from schemas import topology, wire
from schemas.compact import compact
from schemas.errors import DecodeError
from schemas.event import MAX_BODY, MAX_DROPPED, LoginEvent, encode
from schemas.wire import decode_event as decode
from tests.support.digest_support import config_text
from tests.support.factories import T0, event
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import (
    ROOT,
    depth,
    loginwatch,
    publish,
    running_worker,
    take_all,
    write_config,
)

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS: list[Any] = msgspec.msgpack.decode(encode(event()))  # [tag, id, time, host, …]


def body_with(index: int, value: Any) -> bytes:
    """A valid event's wire form with item ``index`` replaced (len(FIELDS): appended)."""
    items = list(FIELDS)
    if index == len(items):
        items.append(value)
    else:
        items[index] = value
    return msgspec.msgpack.encode(items)


def nested(depth: int, map_every: int = 0) -> bytes:
    """msgpack of ``depth`` arrays (every ``map_every``-th a one-entry map) around nil."""
    out = bytearray()
    for level in range(depth):
        out += b"\x81\xa1k" if map_every and level % map_every == 0 else b"\x91"
    return bytes(out + b"\xc0")


def splice(index: int, raw_item: bytes) -> bytes:
    """A valid event with raw msgpack ``raw_item`` as item ``index`` (or appended)."""
    items = [msgspec.msgpack.encode(v) for v in FIELDS]
    if index == len(items):
        items.append(raw_item)
    else:
        items[index] = raw_item
    count = len(items)
    header = bytes([0x90 + count]) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return header + b"".join(items)


# --- the type's bounds -------------------------------------------------------------------


def test_every_numeric_field_has_both_bounds_and_times_carry_a_zone() -> None:
    info = msgspec.inspect.type_info(LoginEvent)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        kind = field.type
        if isinstance(kind, msgspec.inspect.IntType):
            assert kind.ge is not None and kind.le is not None, field.name
        if isinstance(kind, msgspec.inspect.DateTimeType):
            assert kind.tz is True, field.name
    # SUM(dropped) of a window fits a signed 64-bit column up to 2**31 events.
    assert MAX_DROPPED * 2**31 < 2**63


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dropped", -1), ("dropped", MAX_DROPPED + 1), ("dropped", 2**64 - 1), ("dropped", 2**62),
        ("client_port", 65536), ("server_port", -1), ("pam_type", 99), ("outcome", -5),
        ("time", "2026-11-26T12:00:00"),  # naive: no zone
        ("time", "1969-12-31T23:59:59Z"), ("time", "9999-12-31T23:59:59Z"),
        ("time", "2262-04-11T00:00:00Z"),
    ],
)  # fmt: skip
def test_a_number_out_of_its_bound_is_a_decode_error(field: str, value: Any) -> None:
    index = 1 + LoginEvent.__struct_fields__.index(field)
    with pytest.raises(DecodeError):
        decode(body_with(index, value))


def test_the_bounds_themselves_decode() -> None:
    dropped = 1 + LoginEvent.__struct_fields__.index("dropped")
    assert decode(body_with(dropped, MAX_DROPPED)).dropped == MAX_DROPPED
    time = 1 + LoginEvent.__struct_fields__.index("time")
    assert decode(body_with(time, "1970-01-01T00:00:00Z")).time == ev.MIN_TIME


def test_the_hook_saturates_its_dropped_count_at_the_bound() -> None:
    items = {"LW_ID": os.urandom(16).hex().encode(), "LW_TIME": b"1795669046385507837"}
    built = build_event(items, "web-01", dropped=10**20)
    assert decode(encode(built)).dropped == MAX_DROPPED


def test_the_largest_valid_event_is_under_the_body_limit() -> None:
    """Every text field full of 4-byte characters, both name lists full: the most the
    type admits (plus a margin for the fields that may be appended later)."""
    wide = "\U0001f600"
    strings = {
        name: wide * meta
        for name, meta in [
            ("host", ev.MAX_HOST), ("rhost", ev.MAX_HOST), ("user", ev.MAX_NAME),
            ("ruser", ev.MAX_NAME), ("client_ip", ev.MAX_ADDR), ("server_ip", ev.MAX_ADDR),
            ("service", ev.MAX_SHORT), ("tty", ev.MAX_SHORT), ("auth_method", ev.MAX_SHORT),
            ("key_type", ev.MAX_SHORT), ("hook_version", ev.MAX_SHORT),
        ]
    }  # fmt: skip
    names = tuple(wide * ev.MAX_FIELD_NAME for _ in range(16))
    listed = tuple(
        ev.DroppedEvent(time=ev.MAX_TIME - timedelta(days=1), pam_type=ev.PamType.AUTH,
                        outcome=ev.Outcome.FAILURE, user=wide * ev.MAX_SHORT,
                        remote=wide * ev.MAX_ADDR, service=wide * ev.MAX_DROPPED_SERVICE)
        for _ in range(ev.MAX_DROPPED_LISTED)
    )  # fmt: skip
    cert = ev.Certificate(key_id=wide * ev.MAX_KEY_ID, serial="9" * 20,
                          ca_type=wide * ev.MAX_SHORT, ca_sha256=b"\xff" * 32)  # fmt: skip
    keys = (ev.PublicKey(key_type=wide * ev.MAX_SHORT, key_sha256=b"\xff" * 32),) * 3
    biggest = event(**strings, escaped=names, truncated=names, key_sha256=b"\xff" * 32,
                    dropped=MAX_DROPPED, client_port=65535, server_port=65535,
                    dropped_logins=MAX_DROPPED, dropped_list=listed, cert=cert,
                    more_keys=keys, audit_session=ev.AUDIT_UNSET - 1,
                    login_uid=ev.AUDIT_UNSET - 1, session_pid=2**31 - 1,
                    session_start=2**63 - 1)  # fmt: skip
    size = len(encode(biggest))  # 14,269 bytes
    assert decode(encode(biggest)) == biggest
    assert 12_000 < size <= MAX_BODY - 2048, size
    # The compact form of the same (text addresses go as text): 14,273 bytes.
    small = wire.encode(compact(biggest))
    assert wire.decode_event(small) == biggest
    assert len(small) <= MAX_BODY - 2048, len(small)
    with pytest.raises(DecodeError, match=r"length <= 4"):  # one more listed is refused
        decode(encode(msgspec.structs.replace(biggest, dropped_list=(*listed, listed[0]))))


def test_the_hooks_largest_event_is_far_under_the_limit() -> None:
    hostile = ("\U0001f600" * 5000).encode()
    items = {key: hostile for key in ("PAM_USER", "PAM_RUSER", "PAM_RHOST", "PAM_TTY",
                                      "PAM_SERVICE", "LW_NODE")}  # fmt: skip
    items |= {"LW_ID": os.urandom(16).hex().encode(), "LW_TIME": b"1795669046385507837"}
    assert len(encode(build_event(items, None))) < 5 * 1024


# --- decoding never raises anything but DecodeError --------------------------------------


@pytest.mark.parametrize("depth", [3000, 100_000])
@pytest.mark.parametrize("where", ["extra item", "host", "escaped"])
def test_deep_nesting_is_a_decode_error(depth: int, where: str) -> None:
    index = {"extra item": len(FIELDS), "host": 3, "escaped": len(FIELDS) - 2}[where]
    body = splice(index, nested(depth))
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 1]  # still deep, now truncated too
    with pytest.raises(DecodeError) as caught:
        Decoder(Identity())(Incoming(body, "guest"))
    assert caught.value.reason.startswith("undecodable event: ")


def test_the_issues_3_kb_body_nested_3000_deep() -> None:
    body = splice(len(FIELDS), nested(3000))
    assert len(body) < 3200
    with pytest.raises(DecodeError) as caught:
        decode(body)
    assert caught.value.reason == "nested too deeply to decode"


@FAST
@given(
    index=st.integers(min_value=0, max_value=len(FIELDS)),
    depth=st.integers(min_value=1, max_value=12_000),
    map_every=st.integers(min_value=0, max_value=7),
)
@example(index=len(FIELDS), depth=3000, map_every=0)
def test_any_nesting_anywhere_decodes_or_is_a_decode_error(
    index: int, depth: int, map_every: int
) -> None:
    body = splice(index, nested(depth, map_every))
    try:
        decode(body)
    except DecodeError as exc:
        assert exc.reason and exc.data == body


@FAST
@given(st.binary(max_size=4 * MAX_BODY))
@example(b"\xdd\xff\xff\xff\xff")  # an array that claims 4 billion items
@example(b"\xc6\xff\xff\xff\xff")  # a bin that claims 4 GiB
def test_any_bytes_decode_or_are_a_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError as exc:
        assert exc.reason


@FAST
@given(
    index=st.integers(min_value=1, max_value=len(FIELDS)),
    value=st.one_of(
        st.integers(min_value=-(2**63), max_value=2**64 - 1), st.floats(), st.binary(max_size=64),
        st.text(max_size=64), st.none(), st.booleans(),
        st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=4),
        st.dictionaries(st.text(max_size=4), st.none(), max_size=3),
        st.datetimes(timezones=st.just(UTC)), st.datetimes(),
    ),
)  # fmt: skip
def test_any_value_in_any_field_decodes_in_bounds_or_is_a_decode_error(
    index: int, value: Any
) -> None:
    try:
        decoded = decode(body_with(index, value))
    except DecodeError:
        return
    assert 0 <= decoded.dropped <= MAX_DROPPED
    assert 0 <= decoded.client_port <= 65535 and 0 <= decoded.server_port <= 65535
    assert decoded.time.tzinfo is not None and ev.MIN_TIME <= decoded.time < ev.MAX_TIME


# --- dead list: any message, any headers -------------------------------------------------

HEADER_VALUES = st.one_of(
    st.none(), st.integers(), st.text(max_size=40), st.binary(max_size=40), st.booleans(),
    st.datetimes(), st.lists(st.integers(), max_size=3),
    st.lists(st.dictionaries(st.sampled_from(["queue", "reason", "time", "count"]),
                             st.one_of(st.text(max_size=20), st.integers(), st.datetimes()),
                             max_size=4), max_size=3),
)  # fmt: skip
HEADER_NAMES = st.sampled_from(
    [*topology.CENTRAL_HEADERS, "x-death", "x-first-death-queue", "other"]
)


@FAST
@given(
    body=st.one_of(st.binary(max_size=200), st.just(encode(event())),
                   st.just(splice(22, nested(5000)))),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
    user_id=st.sampled_from([None, "", "guest", "host-web-01"]),
    message_id=st.one_of(st.none(), st.text(max_size=30)),
)  # fmt: skip
@example(body=b"\xc1", headers={}, user_id=None, message_id="\x1b]0;pwned\x07\x1b[2J")
def test_dead_list_describes_any_message_in_one_printable_line(
    body: bytes, headers: dict[str, Any], user_id: str | None, message_id: str | None
) -> None:
    message = Delivery(1, body, "x", False, message_id=message_id, user_id=user_id, headers=headers)
    described = describe(message, "guest")
    line = _line(described)
    assert line.isprintable() and line.isascii()
    assert is_id(described.id)
    assert described.origin in (topology.ALERTS_QUEUE, topology.DIGEST_QUEUE)


def test_dead_list_believes_our_headers_only_on_our_copies() -> None:
    forged = {topology.HEADER_REASON: "all fine", topology.HEADER_ORIGIN: topology.DIGEST_QUEUE,
              topology.HEADER_DEAD_AT: 1}  # fmt: skip
    body = encode(event())
    theirs = describe(Delivery(1, body, "x", False, user_id="host-web-01", headers=forged), "guest")
    ours = describe(Delivery(1, body, "x", False, user_id="guest", headers=forged), "guest")
    assert (theirs.reason, theirs.origin, theirs.dead_at) == (
        "unknown",
        topology.ALERTS_QUEUE,
        None,
    )
    assert (ours.reason, ours.origin) == ("all fine", topology.DIGEST_QUEUE)


@pytest.mark.parametrize("wanted", ["random bytes", "\x1b[31m", "ghijkl", "abc", "-", ""])
def test_replay_matches_only_hex_ids(wanted: str) -> None:
    assert not is_id(wanted)
    message = describe(Delivery(1, b"\xc1", "x", False, message_id=wanted), "guest")
    assert not selector([wanted])(message)


# --- on the real broker -------------------------------------------------------------------


@pytest.fixture
def central(vh: Vhost, tmp_path: Path) -> Path:
    path = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=1)
    assert loginwatch("setup", "--config", str(path)).returncode == 0
    return path


def huge(n: int) -> bytes:
    """A valid event followed by a 1 MiB item a decoder would skip: only the limit refuses it."""
    return msgspec.msgpack.encode(
        [*msgspec.msgpack.decode(encode(event(tty=f"h{n}"))), "x" * 2**20]
    )


@pytest.mark.integration
def test_oversized_and_deep_bodies_go_dead_at_once_and_dead_list_shows_them(
    vh: Vhost, central: Path, tmp_path: Path
) -> None:
    deep = splice(len(FIELDS), nested(3000))
    hostile_id = "\x1b]0;owned\x07\x1b[2J"
    with running_worker(central, tmp_path / "worker.log") as worker:
        for n in range(3):
            publish(vh, huge(n), message_id=f"huge-{n}")
        publish(vh, deep, message_id=hostile_id)
        worker.wait_for("dead-lettered: undecodable event", count=4)
    log = worker.text()
    assert "parked" not in log and "internal error" not in log
    assert log.count(f"over the {MAX_BODY}-byte limit") == 3
    assert "nested too deeply to decode" in log
    listing = loginwatch("dead", "list", "--config", str(central))
    assert listing.returncode == 0, listing.stderr
    assert "4 dead message(s)" in listing.stdout
    assert "\x1b" not in listing.stdout and "\x07" not in listing.stdout
    assert listing.stdout.count(f"over the {MAX_BODY}-byte limit") == 3
    # The host's message id is no id: replay refuses it; the id dead list shows works.
    refused = loginwatch("dead", "replay", "--id", hostile_id, "--config", str(central))
    assert refused.returncode != 0 and "hex digits" in refused.stderr
    [deep_line] = [line for line in listing.stdout.splitlines() if "nested too deeply" in line]
    deep_id = deep_line.split()[0]
    assert f"{deep_id} dead-lettered: undecodable event: nested too deeply" in log
    replayed = loginwatch("dead", "replay", "--id", deep_id, "--config", str(central))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert depth(vh, topology.ALERTS_QUEUE) == 1
    [copy] = take_all(vh, topology.ALERTS_QUEUE)
    assert copy.body == deep
    # The dead queue keeps no host's blob: the first 16 KiB, and the length and digest of it.
    bodies = {hashlib.sha256(huge(n)).hexdigest(): huge(n) for n in range(3)}
    dead = take_all(vh, topology.DEAD_QUEUE)
    kept = {_str(m.headers[topology.HEADER_BODY_SHA256]): m for m in dead}
    assert set(kept) == set(bodies)
    for digest, message in kept.items():
        assert message.headers[topology.HEADER_BODY_SIZE] == len(bodies[digest])
        assert message.body == bodies[digest][:MAX_BODY]


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.integration
def test_digest_once_survives_deep_and_oversized_bodies(vh: Vhost, tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        config = tmp_path / "digest.toml"
        config.write_text(config_text(str(tmp_path / "lw.db"), smtp_port=smtp.port,
                                      amqp_url=vh.url()))  # fmt: skip
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        publish(vh, splice(len(FIELDS), nested(3000)), routing_key="login")
        publish(vh, huge(0), routing_key="login")
        publish(vh, encode(event(id=os.urandom(16), time=T0)), routing_key="login")
        env = {
            **os.environ,
            "LOGINWATCH_TEST_CLOCK": datetime(2026, 11, 26, 13, tzinfo=UTC).isoformat(),
        }
        done = subprocess.run(
            [sys.executable, "-m", "consumer.cli", "digest", "--once", "--config", str(config)],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert depth(vh, topology.DIGEST_QUEUE) == 0


class _DeadQueue:
    """A dead queue of ``count`` 1 MiB messages, as ``Broker`` serves it (get, requeue)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.tag = 0
        self.requeued: list[Delivery] = []
        self.user = "guest"
        self.is_open = True

    def get(self, _queue: str) -> Delivery | None:
        if self.tag == self.count:
            return None
        self.tag += 1
        return Delivery(self.tag, os.urandom(1 << 20), "login", False, headers={"x": "y"})

    def requeue(self, delivery: Delivery) -> None:
        self.requeued.append(delivery)


def test_dead_list_holds_one_body_at_a_time() -> None:
    queue = _DeadQueue(40)
    tracemalloc.start()
    try:
        listed = list_dead(queue)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(listed) == 40 and len(queue.requeued) == 40
    assert sorted(d.tag for d in queue.requeued) == list(range(1, 41))
    assert peak < 8 << 20, peak  # 40 MiB went through


# --- identity: whatever a host claims ----------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
CLAIMS = st.one_of(
    st.text(max_size=30),
    LABEL.flatmap(lambda name: st.sampled_from([name, name.upper(), name + ".", f" {name}",
                                                name + "\n", name.replace("e", "\u0435"),
                                                name.replace("k", "\u212a"), name + "*"])),
)  # fmt: skip


@FAST
@given(own=LABEL, claim=CLAIMS, strict=st.booleans())
@example(own="kilo", claim="\u212ailo", strict=False)
@example(own="bravo", claim="BRAVO", strict=True)
def test_a_host_user_is_only_ever_reported_as_its_own_host(
    own: str, claim: str, strict: bool
) -> None:
    identity = Identity(require_user_id=strict, own_user="central", host_users={"relay": ("x*",)})
    try:
        decoded = Decoder(identity)(Incoming(encode(event(host=claim)), f"host-{own}"))
    except DecodeError as exc:
        assert exc.reason.startswith(f'user_id "host-{own}" may not speak for host ')
        return
    assert decoded.host == own
    assert claim.isascii() and claim.lower() == own
