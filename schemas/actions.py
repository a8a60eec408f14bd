"""``[notify_user]`` and ``[web]``: asking the person who logged in, and acting on an alert.

``[notify_user]`` maps a login user to the address (or receiver) that a route with
``ask = true`` sends its "was this you?" question to: a table, then a template
(``"{user}@example.org"``) that only a user name of the portable rule below expands.
``[web]`` is ``loginwatch web``: where it listens, the URL people reach it by (every link
a mail carries starts with it), the file of keys that sign those links, and how an
operator signs in. The rules that need the file system (reading the key and password
files) live where they are read; this module only checks the shape.

The portable user name rule (POSIX's portable filename characters, as ``useradd``
accepts them): 1 to 32 of ``A-Z a-z 0-9 . _ -``, not starting with ``-``. A name is put
into the template exactly as it is: case kept, since Linux user names are case-sensitive
(``Alice`` and ``alice`` are two users); the address is then compared, budgeted and logged
lower-cased, as routing compares every recipient.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Optional
from urllib.parse import urlsplit

import msgspec

from schemas.receivers import Recipient, recipient_problem, reference
from schemas.transport import is_loopback, plaintext_refusal

PORTABLE_USER: Final = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,31}")
_TEMPLATE: Final = re.compile(r"^[^{}@\s<>:]*\{user\}[^{}@\s<>:]*@[A-Za-z0-9.-]+$")

_Glob = Annotated[str, msgspec.Meta(min_length=1)]
# A length of time as [policy] flood_window writes it ("90s", "15m", "12h", "7d", "2w").
Span = Annotated[str, msgspec.Meta(pattern=r"^\d+(\.\d+)?(s|m|h|d|w)$")]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


def _absolute(section: _Section, *keys: str) -> None:
    for key in keys:
        value = getattr(section, key)
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{key} {value!r} is not an absolute path: write it from /")


def portable(user: str) -> bool:
    """Whether ``user`` is a portable user name (the module docstring's rule)."""
    return PORTABLE_USER.fullmatch(user) is not None


class NotifyUserConfig(_Section, frozen=True):
    """``[notify_user]``: where the "was this you?" question of a user goes.

    ``users`` first (a login user name, exactly, → an address or ``receiver:NAME``), then
    ``template`` for a portable user name. Users matched by ``skip`` (and ``root``, always)
    are never asked. ``escalate_to`` hears every "No" beside the routes marked
    ``escalate = true``.
    """

    template: Optional[str] = None
    users: dict[str, Recipient] = {}
    skip: tuple[_Glob, ...] = ()
    escalate_to: tuple[Recipient, ...] = ()
    # Questions to one address within [policy] flood_window; past it the user is not asked
    # (the admins' alert still goes): one login storm cannot flood a person's inbox.
    flood_max: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    # How long the question's two links work.
    answer_within: Span = "1d"

    def __post_init__(self) -> None:
        if self.template is not None and not _TEMPLATE.match(self.template):
            raise ValueError(
                f"template {self.template!r}: write one address with {{user}} in its local"
                ' part, e.g. "{user}@example.org"'
            )
        for user, target in self.users.items():
            why = recipient_problem(target)
            if why:
                raise ValueError(f"users.{user}: {why}")
        for index, target in enumerate(self.escalate_to):
            why = recipient_problem(target)
            if why:
                raise ValueError(f"escalate_to[{index}]: {why}")

    def targets(self) -> tuple[tuple[str, str], ...]:
        """Every ``(key, recipient)`` this section names, for the receiver check."""
        named = [(f"users.{u}", t) for u, t in self.users.items()]
        named += [(f"escalate_to[{i}]", t) for i, t in enumerate(self.escalate_to)]
        return tuple((key, target) for key, target in named if reference(target) is not None)


class WebConfig(_Section, frozen=True):
    """``[web]``: ``loginwatch web`` and the links every alert carries to it."""

    # "127.0.0.1:8025", "[::1]:8025", or "unix:/run/loginwatch/web.sock".
    listen: str = "127.0.0.1:8025"
    # What people's browsers reach (a reverse proxy's https:// URL); every link starts
    # with it. None: alerts carry no links and nobody is asked "was this you?".
    base_url: Optional[str] = None
    # Keys that sign links, one per line: the last signs, all verify (rotation).
    secret_file: str = "/etc/loginwatch/web-keys"  # noqa: S105 - a path, not a secret
    # Operators: "name:scrypt$…" lines (`loginwatch web passwd NAME` writes them).
    password_file: Optional[str] = "/etc/loginwatch/web-passwords"  # noqa: S105 - a path
    # A reverse proxy that authenticates people may name them in this header; trusted
    # only on the unix socket (its mode and group below) or with proxy_secret_file.
    proxy_header: Optional[str] = None
    # The shared secret the proxy sends in X-Loginwatch-Proxy-Secret (TCP listeners).
    proxy_secret_file: Optional[str] = None
    socket_mode: Annotated[int, msgspec.Meta(ge=0, le=0o777)] = 0o660
    socket_group: Optional[str] = None
    # TLS served by loginwatch web itself (else: loopback behind a TLS proxy).
    tls_cert_file: Optional[str] = None
    tls_key_file: Optional[str] = None
    allow_plaintext: bool = False
    session_for: Span = "12h"
    # Links in alerts and questions expire after this.
    links_for: Span = "7d"
    # Failed sign-ins per name or client address within 15 minutes before a pause.
    max_failed_logins: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5

    def __post_init__(self) -> None:
        _absolute(self, "secret_file", "password_file", "proxy_secret_file", "tls_cert_file",
                  "tls_key_file")  # fmt: skip
        self._check_listen()
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"base_url {self.base_url!r}: expected https://HOST[/PATH]")
            if parts.query or parts.fragment:
                raise ValueError("base_url: no query or fragment (links add their own path)")
            why = plaintext_refusal("base_url", parts.hostname, encrypted=parts.scheme == "https",
                                    allow_plaintext=self.allow_plaintext, plain="http://",
                                    what="operators' passwords and session cookies",
                                    fix="use https:// (a TLS reverse proxy)")  # fmt: skip
            if why:
                raise ValueError(why)
        if self.password_file is None and self.proxy_header is None:
            raise ValueError("set password_file or proxy_header: operators must sign in somehow")
        if self.proxy_header is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}",
                                                              self.proxy_header):  # fmt: skip
            raise ValueError(f"proxy_header {self.proxy_header!r}: a header name (A-Z 0-9 -)")
        if self.proxy_header is not None and not self.unix and self.proxy_secret_file is None:
            raise ValueError(
                "proxy_header over TCP needs proxy_secret_file: every local user can reach a"
                " loopback port and send the header; listen on unix:/PATH, or set a secret"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")

    @property
    def unix(self) -> str | None:
        """The socket path of ``listen = "unix:/PATH"``, else None."""
        return self.listen.removeprefix("unix:") if self.listen.startswith("unix:") else None

    def address(self) -> tuple[str, int]:
        """The TCP host and port of ``listen`` (not for a unix socket)."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def _check_listen(self) -> None:
        if self.unix is not None:
            if not self.unix.startswith("/"):
                raise ValueError("listen: unix:/ABSOLUTE/PATH")
            return
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {self.listen!r}: HOST:PORT or unix:/PATH")
        bare = host.strip("[]")
        if self.tls_cert_file is None and not self.allow_plaintext and not is_loopback(bare):
            raise ValueError(
                f"listen is {bare}, off loopback, without TLS: passwords and session cookies"
                " would cross the network unencrypted; set tls_cert_file and tls_key_file,"
                " listen on loopback behind a TLS proxy, or set allow_plaintext = true"
            )


def span_seconds(text: str) -> float:
    """A ``Span`` (``"90s"``, ``"12h"``, ``"7d"``) in seconds."""
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[text[-1]]
