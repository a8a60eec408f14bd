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
from datetime import datetime, timezone
from typing import Annotated, Final, Optional

import msgspec

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
MIN_TIME: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME: Final = datetime(2262, 4, 11, tzinfo=timezone.utc)
# A name in ``escaped`` or ``truncated``: the event's own field names, the longest 11.
MAX_FIELD_NAME: Final = 32
# Dropped events an event lists (``LoginEvent.dropped_list``); ``dropped`` counts them all.
MAX_DROPPED_LISTED: Final = 4
# A listed dropped event's PAM service (``gdm-password`` is 12): its kind needs no more.
MAX_DROPPED_SERVICE: Final = 16
# Keys of one login beyond the first (``AuthenticationMethods publickey,publickey``).
MAX_MORE_KEYS: Final = 3
# A certificate's key id (the CA's text; longer ones are cut and the serial still names it).
MAX_KEY_ID: Final = 128
# The kernel's audit session id and login uid are unsigned 32-bit; all ones means "unset"
# (no pam_loginuid in the session's stack, or it could not write: a container). The hook
# sends None for unset.
AUDIT_UNSET: Final = 2**32 - 1
# The largest body any consumer decodes. The type's bounds allow at most ~13.9 KiB (every
# text field full of 4-byte UTF-8 characters, every list full: see
# tests/integration/hostile/test_hostile_wire.py, which builds that event); the hook's
# own events are under 5 KiB, a typical one ~155 bytes. A longer body cannot be a valid
# event, so it is refused on its length alone, before msgspec reads a byte of it.
MAX_BODY: Final = 16 * 1024
# What the broker accepts at most, node-wide (RabbitMQ's max_message_size, set by
# deploy/rabbitmq/loginwatch.conf; its default is 128 MiB): MAX_BODY and 8 KiB to spare for
# messages other than events (heartbeats, system alerts) and for fields an event may grow.
# So a host can no longer make every worker receive 30 MiB only to refuse it.
BROKER_MAX_MESSAGE: Final = MAX_BODY + 8 * 1024

Host = Annotated[str, msgspec.Meta(max_length=MAX_HOST)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
Short = Annotated[str, msgspec.Meta(max_length=MAX_SHORT)]
Addr = Annotated[str, msgspec.Meta(max_length=MAX_ADDR)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
EventId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
KeyDigest = Annotated[bytes, msgspec.Meta(max_length=32)]
FieldName = Annotated[str, msgspec.Meta(max_length=MAX_FIELD_NAME)]
FieldNames = Annotated[tuple[FieldName, ...], msgspec.Meta(max_length=16)]
Dropped = Annotated[int, msgspec.Meta(ge=0, le=MAX_DROPPED)]
KeyId = Annotated[str, msgspec.Meta(max_length=MAX_KEY_ID)]
# An unsigned 64-bit serial in decimal: a msgpack integer stops at 2**63 in msgspec.
Serial = Annotated[str, msgspec.Meta(max_length=20, pattern="^[0-9]*$")]
# Aware only: a naive time (msgpack also carries RFC 3339 strings) cannot be compared with
# the consumers' UTC clock, and that TypeError would be an "internal error", not a reason.
Time = Annotated[datetime, msgspec.Meta(tz=True)]
Audit = Annotated[int, msgspec.Meta(ge=0, lt=AUDIT_UNSET)]
# A process id (Linux: at most 2**22) and its start time in clock ticks since boot
# (/proc/PID/stat's 22nd field), which tells a process from a later one with its pid.
Pid = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Ticks = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


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


def check_time(time: datetime) -> None:
    # msgspec turns this ValueError into a ValidationError naming the field.
    if not MIN_TIME <= time < MAX_TIME:
        raise ValueError(f"$.time: {time.isoformat()} is outside 1970..2262")


class DroppedEvent(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """One event a host's spool had to drop, as far as the hook still knew it.

    ``time`` is when the hook captured it (1970-01-01 when even that was lost: a
    damaged record). ``user`` and ``remote`` (the client address, else PAM_RHOST)
    are always in the escaped form (see ``unescape``: backslashes doubled, bytes
    that are not UTF-8 as ``\\xNN``) and cut to their bound; both are hostile text.
    """

    time: Time
    pam_type: PamType = PamType.UNKNOWN
    outcome: Outcome = Outcome.UNKNOWN
    user: Short = ""
    remote: Addr = ""
    # Appended: the PAM service ("" from hooks before it, and for a damaged record).
    service: Annotated[str, msgspec.Meta(max_length=MAX_DROPPED_SERVICE)] = ""

    def __post_init__(self) -> None:
        check_time(self.time)

    @property
    def kind(self) -> str:
        """``login``, ``sudo``, ``failure`` … as ``LoginEvent.kind`` (without a service: as
        for sshd)."""
        return event_kind(self.pam_type, self.outcome, self.service)


DroppedList = Annotated[tuple[DroppedEvent, ...], msgspec.Meta(max_length=MAX_DROPPED_LISTED)]


class PublicKey(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """A key a login used beyond the first (``LoginEvent.more_keys``)."""

    key_type: Short = ""
    key_sha256: KeyDigest = b""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_sha256)


class Certificate(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """The OpenSSH certificate a key login presented (``LoginEvent.cert``), as sshd logs
    it: ``ID "key_id" (serial N) CA ca_type SHA256:…``. ``key_id`` is the CA's text,
    always in the escaped form (see ``unescape``) and cut to its bound; ``serial`` is
    the unsigned 64-bit serial in decimal."""

    key_id: KeyId = ""
    serial: Serial = ""
    ca_type: Short = ""
    ca_sha256: KeyDigest = b""

    @property
    def ca_fingerprint(self) -> str:
        return fingerprint(self.ca_sha256)


MoreKeys = Annotated[tuple[PublicKey, ...], msgspec.Meta(max_length=MAX_MORE_KEYS)]


class LoginEvent(msgspec.Struct, frozen=True, array_like=True, tag=1, kw_only=True):
    """One login, logout or failed authentication, as seen by a host's PAM hook.

    ``escaped`` names the fields whose raw bytes were not UTF-8: in those, every
    byte that did not decode reads ``\\xNN`` and every literal backslash ``\\\\``
    (see ``unescape``). ``truncated`` names the fields the hook cut to their bound.
    ``rhost`` is PAM_RHOST only where it differs from ``client_ip`` (a DNS
    name, with sshd's ``UseDNS yes``); ``remote_host`` gives whichever applies.

    What this host's spool had to drop since the last event that got through
    (a full spool, a full disk, a damaged record; losses are never silent):

    - ``dropped``: how many events, all kinds together;
    - ``dropped_logins``: how many of them were logins or logouts (or successful
      authentications), the ones a person must hear about at once;
    - ``dropped_list``: up to ``MAX_DROPPED_LISTED`` of them (``DroppedEvent``:
      time, kind, user, remote address), logins and logouts first, then the first
      and the latest of the rest; ``dropped - len(dropped_list)`` are counted only.

    An event from a hook older than these fields has ``dropped_logins = 0`` and an
    empty list, whatever ``dropped`` says: nothing is known of what it dropped.

    ``key_sha256`` is the SHA-256 of the login's (first) key, as ``ssh-keygen -l``
    prints it (``fingerprint``); for a certificate, the certified key's, which is what
    sshd logs, and ``cert`` says who issued it. ``more_keys`` are the other keys of a
    login that needed several, in order. Both are None/empty for a plain key login, and
    from hooks older than these fields.

    What ties a session's later events (``sudo``, ``su``) to the login it began with
    (docs/host-hook.md, "Escalation"): ``audit_session``, the kernel's audit session id
    (``/proc/self/sessionid``, which pam_loginuid sets at the login and every process of
    the session inherits; None when unset), ``login_uid`` (``/proc/self/loginuid``, the
    uid the session logged in as; None when unset), and ``session_pid`` with
    ``session_start``: the session's sshd process (the login's hook: the process running
    PAM; sudo's and su's: the nearest ancestor that is a root sshd) and its start time in
    clock ticks since boot, 0 when there is none. All four are absent (None, 0) in events
    from hooks older than these fields.
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
    # Appended (the evolution rule): older decoders ignore them, older events lack them.
    dropped_logins: Dropped = 0
    dropped_list: DroppedList = ()
    cert: Optional[Certificate] = None
    more_keys: MoreKeys = ()
    audit_session: Optional[Audit] = None
    login_uid: Optional[Audit] = None
    session_pid: Pid = 0
    session_start: Ticks = 0

    def __post_init__(self) -> None:
        check_time(self.time)

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @property
    def remote_host(self) -> str:
        return self.rhost or self.client_ip

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint as ``ssh-keygen -l`` prints it, or ``""``."""
        return fingerprint(self.key_sha256)

    @property
    def kind(self) -> str:
        """What happened, in one word: what routes and silences match on (``KINDS``)."""
        return event_kind(self.pam_type, self.outcome, self.service)


def fingerprint(digest: bytes) -> str:
    """A key's SHA-256 as ``ssh-keygen -l`` prints it, or ``""``."""
    if not digest:
        return ""
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# The PAM services whose sessions are kinds of their own (``event_kind``); every other
# service (sshd, and whatever else a hook was put in by hand) keeps login/logout/failure.
SERVICE_CLASSES: Final = {
    "su": "su",
    "su-l": "su",
    "sudo": "sudo",
    "sudo-i": "sudo",
    "login": "console",
}


def event_kind(pam_type: PamType, outcome: Outcome, service: str = "") -> str:
    """What happened, in one word (``KINDS``).

    An SSH login (or any service but those of ``SERVICE_CLASSES``) is ``login``, ``logout``
    or ``failure``, as it always was. A session of su, sudo or a console login is ``su``,
    ``sudo`` or ``console`` when it opens, ``su-end`` … when it closes, ``su-failure`` …
    when it failed: a route for ``login`` never mails a sudo, and a sudo never spends the
    SSH logins' flood budget.
    """
    kind = _base_kind(pam_type, outcome)
    group = SERVICE_CLASSES.get(service)
    if group is None:
        return kind
    return _GROUPED[kind].format(group) if kind in _GROUPED else kind


def _base_kind(pam_type: PamType, outcome: Outcome) -> str:
    if outcome is Outcome.FAILURE:
        return "failure"
    if pam_type is PamType.OPEN_SESSION:
        return "login"
    if pam_type is PamType.CLOSE_SESSION:
        return "logout"
    return pam_type.name.lower()


_GROUPED: Final = {"login": "{}", "logout": "{}-end", "failure": "{}-failure"}
_GROUPS: Final = ("su", "sudo", "console")

KINDS: Final = (
    "login", "logout", "failure", "auth", "account", "password", "unknown",
    *(form.format(group) for group in _GROUPS for form in _GROUPED.values()),
)  # fmt: skip

_encoder: Final = msgspec.msgpack.Encoder()


def encode(event: LoginEvent) -> bytes:
    """The first event version (tag 1), as hooks before the compact form send it; a hook
    sends ``schemas.compact`` now, and ``schemas.wire.decode`` reads both."""
    return _encoder.encode(event)


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
