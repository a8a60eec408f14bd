"""The compact event (tag 2): a ``LoginEvent`` in fewer bytes, for the same facts.

Field types cannot change under the evolution rule (``schemas/event.py``), so the compact
form is a version of its own, with a tag of its own, that ``schemas.wire.decode`` reads
beside the first (tag 1) and expands into the same ``LoginEvent``: the central side sees
one event type, whichever form a host sent. What makes it smaller:

- addresses as their 4 or 16 raw bytes (``pack_address``); an address that is not plain,
  or would not read back the same (a scoped ``fe80::1%eth0``), goes as text in a field of
  its own (``client_text``, ``server_text``: msgspec has no union of bytes and text);
- the PAM service, the authentication methods and the key type as small codes into
  append-only tables (``SERVICES``, ``METHODS``, ``KEY_TYPES``), or the text itself when
  the table has no code for it;
- the fields that are almost always empty (dropped events, certificates, more keys)
  last, where they cost a byte each.

A code a decoder's tables lack (a host newer than the central side, against the rule that
the central side is upgraded first) is refused with the reason, to the dead queue, from
where ``loginwatch dead replay`` brings it back once the central side is upgraded.

This module imports what the hook's publisher has imported anyway (``socket``: pika).
"""

from __future__ import annotations

import socket
from typing import Annotated, Final, Optional, Union

import msgspec

from schemas import event as ev
from schemas.event import (
    Addr,
    Audit,
    Certificate,
    Dropped,
    DroppedList,
    EventId,
    FieldNames,
    Host,
    KeyDigest,
    LoginEvent,
    MoreKeys,
    Name,
    Outcome,
    PamType,
    Pid,
    Port,
    Short,
    Ticks,
    Time,
)

# Append-only: a code, once given, names the same text forever (its index).
SERVICES: Final = ("", "sshd", "su", "su-l", "sudo", "sudo-i", "login", "runuser",
                   "runuser-l", "systemd-user", "cron", "remote", "gdm-password",
                   "lightdm", "sddm", "xrdp-sesman", "passwd", "other")  # fmt: skip
# As producer/sshkeys.py joins them (``+``).
METHODS: Final = ("", "publickey", "password", "keyboard-interactive", "hostbased",
                  "gssapi-with-mic", "gssapi-keyex", "none", "publickey+publickey",
                  "publickey+password", "publickey+keyboard-interactive",
                  "password+publickey", "keyboard-interactive+publickey")  # fmt: skip
KEY_TYPES: Final = (
    "", "ssh-ed25519", "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512", "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss",
    "ssh-ed25519-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "ssh-dss-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com",
)  # fmt: skip
_SERVICE_CODES: Final = {text: code for code, text in enumerate(SERVICES)}
_METHOD_CODES: Final = {text: code for code, text in enumerate(METHODS)}
_KEY_CODES: Final = {text: code for code, text in enumerate(KEY_TYPES)}

Code = Annotated[int, msgspec.Meta(ge=0, le=255)]
# An address: 4 or 16 raw bytes, or none (``pack_address``).
RawAddr = Annotated[bytes, msgspec.Meta(max_length=16)]
CodedShort = Union[Code, Short]


class CompactEvent(msgspec.Struct, frozen=True, array_like=True, tag=2, kw_only=True):
    """A ``LoginEvent`` in its compact form: the same fields, as the module doc says.

    Appended fields follow the evolution rule, as in ``LoginEvent``.
    """

    id: EventId
    time: Time
    host: Host
    service: CodedShort = 0
    pam_type: PamType = PamType.UNKNOWN
    outcome: Outcome = Outcome.UNKNOWN
    user: Name = ""
    ruser: Name = ""
    rhost: Host = ""
    tty: Short = ""
    client_ip: RawAddr = b""
    client_port: Port = 0
    server_ip: RawAddr = b""
    server_port: Port = 0
    auth_method: CodedShort = 0
    key_type: CodedShort = 0
    key_sha256: KeyDigest = b""
    hook_version: Short = ""
    audit_session: Optional[Audit] = None
    login_uid: Optional[Audit] = None
    session_pid: Pid = 0
    session_start: Ticks = 0
    client_text: Addr = ""
    server_text: Addr = ""
    dropped: Dropped = 0
    escaped: FieldNames = ()
    truncated: FieldNames = ()
    dropped_logins: Dropped = 0
    dropped_list: DroppedList = ()
    cert: Optional[Certificate] = None
    more_keys: MoreKeys = ()

    def __post_init__(self) -> None:
        # Refused here, at decoding, naming the field: never a half-expanded event.
        for name in ("client_ip", "server_ip"):
            value = getattr(self, name)
            if len(value) not in (0, 4, 16):
                raise ValueError(f"$.{name}: {len(value)} raw bytes is no address")
        for name, table in (("service", SERVICES), ("auth_method", METHODS),
                            ("key_type", KEY_TYPES)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, int) and value >= len(table):
                raise ValueError(f"$.{name}: code {value} is unknown here (a newer host?)")
        ev.check_time(self.time)


def pack_address(text: str) -> tuple[bytes, str]:
    """(4 or 16 raw bytes, "") when ``text`` is an address that reads back exactly the same
    (``unpack_address``), else (b"", ``text``): nothing is lost either way."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            raw = socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        if socket.inet_ntop(family, raw) == text:
            return raw, ""
    return b"", text


def unpack_address(raw: bytes, text: str = "") -> str:
    """The text of an address ``pack_address`` made: from its raw bytes, else ``text``.

    Raises:
        ValueError: ``raw`` is neither 0, 4 nor 16 bytes long.
    """
    if not raw:
        return text
    if len(raw) not in (4, 16):
        raise ValueError(f"{len(raw)} raw bytes is no address")
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _coded(text: str, codes: dict[str, int]) -> CodedShort:
    return codes.get(text, text)


def _text(value: CodedShort, table: tuple[str, ...]) -> str:
    return table[value] if isinstance(value, int) else value


def compact(event: LoginEvent) -> CompactEvent:
    """``event`` in the compact form; ``expand`` gives it back, field for field."""
    client_ip, client_text = pack_address(event.client_ip)
    server_ip, server_text = pack_address(event.server_ip)
    return CompactEvent(
        id=event.id, time=event.time, host=event.host,
        service=_coded(event.service, _SERVICE_CODES), pam_type=event.pam_type,
        outcome=event.outcome, user=event.user, ruser=event.ruser, rhost=event.rhost,
        tty=event.tty, client_ip=client_ip, client_port=event.client_port,
        server_ip=server_ip, server_port=event.server_port,
        auth_method=_coded(event.auth_method, _METHOD_CODES),
        key_type=_coded(event.key_type, _KEY_CODES), key_sha256=event.key_sha256,
        hook_version=event.hook_version, audit_session=event.audit_session,
        login_uid=event.login_uid, session_pid=event.session_pid,
        session_start=event.session_start, client_text=client_text, server_text=server_text,
        dropped=event.dropped, escaped=event.escaped, truncated=event.truncated,
        dropped_logins=event.dropped_logins, dropped_list=event.dropped_list, cert=event.cert,
        more_keys=event.more_keys,
    )  # fmt: skip


def expand(event: CompactEvent) -> LoginEvent:
    """The ``LoginEvent`` a compact event stands for."""
    return LoginEvent(
        id=event.id, time=event.time, host=event.host,
        service=_text(event.service, SERVICES), pam_type=event.pam_type,
        outcome=event.outcome, user=event.user, ruser=event.ruser, rhost=event.rhost,
        tty=event.tty, client_ip=unpack_address(event.client_ip, event.client_text),
        client_port=event.client_port,
        server_ip=unpack_address(event.server_ip, event.server_text),
        server_port=event.server_port, auth_method=_text(event.auth_method, METHODS),
        key_type=_text(event.key_type, KEY_TYPES), key_sha256=event.key_sha256,
        hook_version=event.hook_version, dropped=event.dropped, escaped=event.escaped,
        truncated=event.truncated, dropped_logins=event.dropped_logins,
        dropped_list=event.dropped_list, cert=event.cert, more_keys=event.more_keys,
        audit_session=event.audit_session, login_uid=event.login_uid,
        session_pid=event.session_pid, session_start=event.session_start,
    )  # fmt: skip
