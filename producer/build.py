"""Turn a capture record into a ``LoginEvent`` (in the publisher, off the login path).

Everything in a capture may be attacker-chosen: values are escaped when they
are not UTF-8, cut to the event's bounds, and parsed without ever failing —
an unparseable SSH_CONNECTION just leaves the address fields empty.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from schemas import event as ev
from schemas.event import LoginEvent, Outcome, PamType

try:
    HOOK_VERSION = version("loginwatch")
except PackageNotFoundError:  # running from a source tree
    HOOK_VERSION = "0+unknown"

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
        self.values: dict[str, str] = {}
        self.escaped: list[str] = []
        self.truncated: list[str] = []

    def put(self, name: str, raw: bytes) -> None:
        text, was_escaped = ev.escape_bytes(raw)
        limit = _LIMITS[name]
        if len(text) > limit:
            self.truncated.append(name)
            text = _cut_escaped(raw, limit) if was_escaped else text[:limit]
        if was_escaped:
            self.escaped.append(name)
        self.values[name] = text


def _cut_escaped(raw: bytes, limit: int) -> str:
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


def build_event(items: dict[str, bytes], host_name: str | None, dropped: int = 0) -> LoginEvent:
    """The event for one capture; ``host_name`` overrides the captured node name.

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
    method, key_type, digest = parse_auth_info(items.get("SSH_AUTH_INFO_0", b""))
    fields.put("auth_method", method)
    fields.put("key_type", key_type)
    pam_type = PamType.parse(items.get("PAM_TYPE", b"").decode("ascii", "replace"))
    return LoginEvent(
        id=bytes.fromhex(items["LW_ID"].decode("ascii")),
        time=datetime.fromtimestamp(int(items["LW_TIME"]) / 1e9, UTC),
        pam_type=pam_type,
        outcome=_outcome(items.get("LW_OUTCOME", b""), pam_type),
        client_port=client_port,
        server_port=server_port,
        key_sha256=digest,
        hook_version=HOOK_VERSION[: ev.MAX_SHORT],
        dropped=min(dropped, ev.MAX_DROPPED),  # the wire's bound: the counter saturates
        escaped=tuple(fields.escaped),
        truncated=tuple(fields.truncated),
        **fields.values,
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


def parse_auth_info(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """SSH_AUTH_INFO_0 → (methods joined by ``+``, key type, SHA256 digest of the key).

    One line per method, e.g. ``publickey ssh-ed25519 AAAA…``; the key blob is
    hashed here and never leaves the host.
    """
    methods: list[bytes] = []
    key_type = digest = b""
    for line in raw.splitlines():
        words = line.split()
        if not words:
            continue
        methods.append(words[0])
        if words[0] == b"publickey" and len(words) >= 3 and not digest:
            try:
                blob = base64.b64decode(words[2], validate=True)
            except (binascii.Error, ValueError):
                continue
            key_type, digest = words[1], hashlib.sha256(blob).digest()
    return b"+".join(methods), key_type, digest
