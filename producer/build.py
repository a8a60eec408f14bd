"""Turn a capture record into a ``LoginEvent`` (in the publisher, off the login path).

Everything in a capture may be attacker-chosen: values are escaped when they
are not UTF-8, cut to the event's bounds, and parsed without ever failing —
an unparseable SSH_CONNECTION just leaves the address fields empty.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from producer.capture import AUTH_INFO_LIMIT
from producer.ledger import Drop, Ledger
from producer.sshkeys import Cert, Key, parse_auth_info
from schemas import event as ev
from schemas.event import (
    Certificate,
    DroppedEvent,
    LoginEvent,
    Outcome,
    PamType,
    PublicKey,
)
from schemas.version import VERSION as HOOK_VERSION

_LIMITS = {
    "host": ev.MAX_HOST,
    "service": ev.MAX_SHORT,
    "user": ev.MAX_NAME,
    "ruser": ev.MAX_NAME,
    "rhost": ev.MAX_HOST,
    "tty": ev.MAX_SHORT,
    "client_ip": ev.MAX_ADDR,
    "server_ip": ev.MAX_ADDR,
    "auth_method": ev.MAX_SHORT,
    "key_type": ev.MAX_SHORT,
}
_SOURCES = {
    "service": "PAM_SERVICE",
    "user": "PAM_USER",
    "ruser": "PAM_RUSER",
    "rhost": "PAM_RHOST",
    "tty": "PAM_TTY",
}


class _Fields:
    """Collects text fields, escaping and cutting them, and remembers which."""

    def __init__(self) -> None:
        # Any: they go into LoginEvent(**values), beside fields of other types.
        self.values: dict[str, Any] = {}
        self.escaped: list[str] = []
        self.truncated: list[str] = []

    def put(self, name: str, raw: bytes) -> None:
        text, was_escaped = ev.escape_bytes(raw)
        limit = _LIMITS[name]
        if len(text) > limit:
            self.truncated.append(name)
            text = cut_escaped(raw, limit) if was_escaped else text[:limit]
        if was_escaped:
            self.escaped.append(name)
        self.values[name] = text


def cut_escaped(raw: bytes, limit: int) -> str:
    """The longest escaped prefix of ``raw`` within ``limit`` characters.

    Cut the bytes, not the text: a text cut could split a ``\\xNN`` escape, and
    the field would no longer unescape to a prefix of what the remote side sent.
    """
    cut = raw[:limit]
    while True:
        text = ev.escape_always(cut)
        if len(text) <= limit:
            return text
        # Each escape is at most 4 characters for 1 byte: shrink by what overflows.
        cut = cut[: len(cut) - max(1, (len(text) - limit) // 4)]


def build_event(
    items: dict[str, bytes], host_name: str | None, dropped: Ledger | int = 0
) -> LoginEvent:
    """The event for one capture; ``host_name`` overrides the captured node name.

    ``dropped``: what the spool dropped, to report (``producer.ledger``); a bare
    count when nothing more is known.

    Raises:
        ValueError: the record lacks its id or time (not written by our hook).
    """
    fields = _Fields()
    fields.put("host", host_name.encode() if host_name else items.get("LW_NODE", b""))
    for name, key in _SOURCES.items():
        fields.put(name, items.get(key, b""))
    client_ip, client_port, server_ip, server_port = parse_connection(
        items.get("SSH_CONNECTION", b"")
    )
    fields.put("client_ip", client_ip)
    if fields.values["rhost"] == fields.values["client_ip"]:
        # With `UseDNS no` (recommended) PAM_RHOST is the client address: say it once.
        fields.values["rhost"] = ""
    fields.put("server_ip", server_ip)
    raw_auth = items.get("SSH_AUTH_INFO_0", b"")
    auth = parse_auth_info(raw_auth)
    fields.put("auth_method", auth.methods)
    if len(raw_auth) > AUTH_INFO_LIMIT and "auth_method" not in fields.truncated:
        fields.truncated.append("auth_method")  # the capture cut it: methods may be missing
    first = auth.keys[0] if auth.keys else Key(b"", b"")
    if len(auth.keys) > 1 + ev.MAX_MORE_KEYS:
        fields.truncated.append("more_keys")
    fields.put("key_type", first.type)
    pam_type = PamType.parse(items.get("PAM_TYPE", b"").decode("ascii", "replace"))
    report = dropped if isinstance(dropped, Ledger) else Ledger((dropped, 0, ()))
    sshd_pid, sshd_start = _sshd(items.get("LW_SSHD", b""))
    return LoginEvent(
        id=bytes.fromhex(items["LW_ID"].decode("ascii")),
        time=_time(int(items["LW_TIME"])),
        pam_type=pam_type,
        outcome=_outcome(items.get("LW_OUTCOME", b""), pam_type),
        client_port=client_port,
        server_port=server_port,
        key_sha256=first.sha256,
        hook_version=HOOK_VERSION[: ev.MAX_SHORT],
        # The wire's bound: the counter saturates.
        dropped=min(report.total, ev.MAX_DROPPED),
        escaped=tuple(fields.escaped),
        truncated=tuple(fields.truncated),
        dropped_logins=min(report.logins, ev.MAX_DROPPED),
        dropped_list=tuple(_dropped(drop) for drop in report.listed[: ev.MAX_DROPPED_LISTED]),
        cert=_certificate(auth.cert),
        more_keys=tuple(
            PublicKey(key_type=cut_escaped(key.type, ev.MAX_SHORT), key_sha256=key.sha256)
            for key in auth.keys[1 : 1 + ev.MAX_MORE_KEYS]
        ),
        audit_session=_audit(items.get("LW_AUDIT", b"")),
        login_uid=_audit(items.get("LW_LOGINUID", b"")),
        session_pid=sshd_pid,
        session_start=sshd_start,
        **fields.values,
    )


def _audit(raw: bytes) -> int | None:
    """An audit id as the kernel wrote it; None when unset, missing or no number."""
    if not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if value < ev.AUDIT_UNSET else None


def _sshd(raw: bytes) -> tuple[int, int]:
    """``PID START`` of the session's sshd; (0, 0) when there is none (or it is garbled)."""
    words = raw.split()
    if len(words) != 2 or not all(w.isdigit() and len(w) <= 18 for w in words):
        return 0, 0
    pid, start = int(words[0]), int(words[1])
    return (pid, start) if 0 < pid < 2**31 else (0, 0)


def _certificate(cert: Cert | None) -> Certificate | None:
    if cert is None:
        return None
    return Certificate(
        key_id=cut_escaped(cert.key_id, ev.MAX_KEY_ID),
        serial=str(cert.serial),
        ca_type=cut_escaped(cert.ca_type, ev.MAX_SHORT),
        ca_sha256=cert.ca_sha256,
    )


_MAX_TIME_NS = int(ev.MAX_TIME.timestamp()) * 10**9


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc)


def _dropped(drop: Drop) -> DroppedEvent:
    pam_type = PamType.parse(drop.pam_type.decode("ascii", "replace"))
    # A time no clock gives (a damaged ledger) must not make the event unbuildable: 1970
    # says "unknown", as for a record too damaged to read.
    when = drop.time_ns if 0 <= drop.time_ns < _MAX_TIME_NS else 0
    return DroppedEvent(
        time=_time(when),
        pam_type=pam_type,
        outcome=_outcome(drop.outcome, pam_type),
        # Always the escaped form (the type says so): no flag to carry.
        user=cut_escaped(drop.user, ev.MAX_SHORT),
        remote=cut_escaped(drop.remote, ev.MAX_ADDR),
        service=cut_escaped(drop.service, ev.MAX_DROPPED_SERVICE),
    )


def _outcome(raw: bytes, pam_type: PamType) -> Outcome:
    if raw == b"success":
        return Outcome.SUCCESS
    if raw == b"failure":
        return Outcome.FAILURE
    # A session only opens (or closes) after authentication succeeded.
    if pam_type in (PamType.OPEN_SESSION, PamType.CLOSE_SESSION):
        return Outcome.SUCCESS
    return Outcome.UNKNOWN


def parse_connection(raw: bytes) -> tuple[bytes, int, bytes, int]:
    """SSH_CONNECTION ``client_ip client_port server_ip server_port``; zeros when malformed."""
    parts = raw.split()
    if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit():
        return b"", 0, b"", 0
    client_port, server_port = int(parts[1]), int(parts[3])
    if client_port > 65535 or server_port > 65535:
        return b"", 0, b"", 0
    return parts[0], client_port, parts[2], server_port
