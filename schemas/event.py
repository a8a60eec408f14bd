"""The wire contract: one ``LoginEvent`` per PAM hook run, msgpack on the wire.

Evolution rules (msgspec ``docs/schema-evolution.rst``): the struct is
``array_like`` for compactness, so new fields are only ever *appended*, each
with a default; old decoders ignore the extra trailing items and new decoders
fill in the defaults for old events. Never ``forbid_unknown_fields`` here.

Every text field is chosen, at least in part, by the remote side of an SSH
connection: consumers must treat it as hostile (see ``consumer/stages/render``).
"""

from __future__ import annotations

import base64
import enum
from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from schemas.errors import DecodeError

# Field bounds. The hook truncates to these (recording which fields it cut),
# the decoder rejects anything longer: a 1 MiB user name never gets through.
MAX_HOST: Final = 253
MAX_NAME: Final = 256
MAX_SHORT: Final = 64
MAX_ADDR: Final = 64
# The spool's dropped counter saturates here (the hook clamps to it). The bound is what
# keeps every aggregate in its column: a SUM of ``dropped`` overflows a signed 64-bit
# integer only past 2**31 events in one window, far beyond what any store holds.
MAX_DROPPED: Final = 2**32 - 1
# Event times as the hook makes them: a signed 64-bit count of nanoseconds since 1970
# (``time.time_ns``), so 1970 through 2262. Anything outside is no clock's reading, and
# window arithmetic around it (± days, ± a week) never leaves ``datetime``'s range.
MIN_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME: Final = datetime(2262, 4, 11, tzinfo=UTC)
# The largest body any consumer decodes. The type's bounds allow at most ~14.3 KiB (every
# text field full of 4-byte UTF-8 characters, both field-name lists full: see
# tests/integration/test_hostile_wire.py, which builds that event); the hook's own events are under
# 1 KiB, a typical one ~160 bytes. A longer body cannot be a valid event, so it is refused
# on its length alone, before msgspec reads a byte of it.
MAX_BODY: Final = 16 * 1024

Host = Annotated[str, msgspec.Meta(max_length=MAX_HOST)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
Short = Annotated[str, msgspec.Meta(max_length=MAX_SHORT)]
Addr = Annotated[str, msgspec.Meta(max_length=MAX_ADDR)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
EventId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
KeyDigest = Annotated[bytes, msgspec.Meta(max_length=32)]
FieldNames = Annotated[tuple[Short, ...], msgspec.Meta(max_length=16)]
Dropped = Annotated[int, msgspec.Meta(ge=0, le=MAX_DROPPED)]
# Aware only: a naive time (msgpack also carries RFC 3339 strings) cannot be compared with
# the consumers' UTC clock, and that TypeError would be an "internal error", not a reason.
Time = Annotated[datetime, msgspec.Meta(tz=True)]


class PamType(enum.IntEnum):
    """PAM_TYPE as pam_exec reports it (small ints keep the wire compact)."""

    UNKNOWN = 0
    AUTH = 1
    ACCOUNT = 2
    PASSWORD = 3
    OPEN_SESSION = 4
    CLOSE_SESSION = 5

    @classmethod
    def parse(cls, text: str) -> PamType:
        return _PAM_TYPES.get(text, cls.UNKNOWN)


_PAM_TYPES: Final = {
    "auth": PamType.AUTH,
    "account": PamType.ACCOUNT,
    "password": PamType.PASSWORD,
    "open_session": PamType.OPEN_SESSION,
    "close_session": PamType.CLOSE_SESSION,
}


class Outcome(enum.IntEnum):
    UNKNOWN = 0
    SUCCESS = 1
    FAILURE = 2


class LoginEvent(msgspec.Struct, frozen=True, array_like=True, tag=1, kw_only=True):
    """One login, logout or failed authentication, as seen by a host's PAM hook.

    ``escaped`` names the fields whose raw bytes were not UTF-8: in those, every
    byte that did not decode reads ``\\xNN`` and every literal backslash ``\\\\``
    (see ``unescape``). ``truncated`` names the fields the hook cut to their bound.
    ``rhost`` is PAM_RHOST only where it differs from ``client_ip`` (a DNS
    name, with sshd's ``UseDNS yes``); ``remote_host`` gives whichever applies.
    ``dropped`` counts events this host's spool had to discard since the last
    event that got through (overflow or a full disk): losses are never silent.
    """

    id: EventId
    time: Time
    host: Host
    service: Short = ""
    pam_type: PamType = PamType.UNKNOWN
    outcome: Outcome = Outcome.UNKNOWN
    user: Name = ""
    ruser: Name = ""
    rhost: Host = ""
    tty: Short = ""
    client_ip: Addr = ""
    client_port: Port = 0
    server_ip: Addr = ""
    server_port: Port = 0
    auth_method: Short = ""
    key_type: Short = ""
    key_sha256: KeyDigest = b""
    hook_version: Short = ""
    dropped: Dropped = 0
    escaped: FieldNames = ()
    truncated: FieldNames = ()

    def __post_init__(self) -> None:
        # msgspec turns this ValueError into a ValidationError naming the field.
        if not MIN_TIME <= self.time < MAX_TIME:
            raise ValueError(f"$.time: {self.time.isoformat()} is outside 1970..2262")

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @property
    def remote_host(self) -> str:
        return self.rhost or self.client_ip

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint as ``ssh-keygen -l`` prints it, or ``""``."""
        if not self.key_sha256:
            return ""
        return "SHA256:" + base64.b64encode(self.key_sha256).decode().rstrip("=")

    @property
    def kind(self) -> str:
        """What happened, in one word: what routes and silences match on."""
        return event_kind(self.pam_type, self.outcome)


def event_kind(pam_type: PamType, outcome: Outcome) -> str:
    if outcome is Outcome.FAILURE:
        return "failure"
    if pam_type is PamType.OPEN_SESSION:
        return "login"
    if pam_type is PamType.CLOSE_SESSION:
        return "logout"
    return pam_type.name.lower()


KINDS: Final = ("login", "logout", "failure", "auth", "account", "password", "unknown")

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(LoginEvent)


def encode(event: LoginEvent) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> LoginEvent:
    """Decode and validate one event.

    Raises:
        DecodeError: the body is not a valid ``LoginEvent``: longer than ``MAX_BODY``,
            not msgpack, a field out of its bound, nested too deep for the decoder
            (``RecursionError``), or anything else msgspec raises. It keeps the raw
            bytes and the reason (``$.user: ...``) for the dead queue.
    """
    if len(data) > MAX_BODY:
        raise DecodeError(f"body of {len(data)} bytes is over the {MAX_BODY}-byte limit", data)
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise DecodeError(str(exc), data) from exc
    except RecursionError:
        raise DecodeError("nested too deeply to decode", data) from None
    except Exception as exc:
        raise DecodeError(f"cannot decode: {type(exc).__name__}: {exc}"[:200], data) from None


def escape_bytes(raw: bytes) -> tuple[str, bool]:
    """Text for ``raw``: as is when it is UTF-8, else reversibly escaped.

    Returns the text and whether it had to be escaped.
    """
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return escape_always(raw), True


def escape_always(raw: bytes) -> str:
    """``raw`` in the escaped form (backslashes doubled, undecodable bytes as ``\\xNN``)."""
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def unescape(text: str) -> bytes:
    """The raw bytes of a field listed in ``LoginEvent.escaped``."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text.startswith("\\\\", i):
            out += b"\\"
            i += 2
        elif ch == "\\" and text.startswith("\\x", i):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += ch.encode()
            i += 1
    return bytes(out)
