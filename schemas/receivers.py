"""``[receiver.NAME]``: the places besides mail that a notice can go, one target each.

A route names a receiver beside its addresses: ``to = ["ops@example.org", "receiver:chat"]``.
A reference can never be read as an address, nor an address as a reference: a receiver's
name is lower-case letters, digits, ``-`` and ``_`` (so no ``@``), and an address needs an
``@`` and holds no ``:`` (``slack:ops@example.org`` is neither, and is refused). Names are
lower-case only: ``receiver:Chat`` is refused rather than folded, so the case of a name
never matters (routing lower-cases every recipient, ``consumer/core/routing.py``).

Every credential comes from a file only its owner can read (``schemas/files.py``), never
from the TOML: a Slack, Mattermost, Discord, Teams or Apprise URL (``url_file``: the URL *is*
the credential), a Telegram bot token (``token_file``), an ntfy token or password, a webhook's
signing keys (``secret_file``, one ``whsec_`` key per line). ``resolve`` reads them and checks
the URL's shape and transport; its errors name the key and show a URL only as
``scheme://host``, never its path or query (where the secret of a webhook URL lives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final, Literal, Optional, Union, get_args
from urllib.parse import urlsplit

import msgspec

from schemas.errors import ConfigError
from schemas.files import read_secret, read_secret_lines
from schemas.transport import plaintext_refusal

PREFIX: Final = "receiver:"
_NAME: Final = r"[a-z0-9][a-z0-9_-]{0,62}"
NAME_PATTERN: Final = _NAME
ReceiverName = Annotated[str, msgspec.Meta(pattern=rf"^{_NAME}$")]
_REFERENCE: Final = re.compile(rf"^receiver:({_NAME})$")
_ADDRESS: Final = re.compile(r"^[^@\s<>:]+@[^@\s<>:]+$")
# A route's or a silence's recipient: an address or a reference, checked by ``recipient_problem``.
Recipient = Annotated[str, msgspec.Meta(min_length=1, max_length=320)]


def reference(recipient: str) -> str | None:
    """The receiver's name when ``recipient`` is ``receiver:NAME``, else None (an address)."""
    found = _REFERENCE.match(recipient)
    return found[1] if found else None


def recipient_problem(recipient: str) -> str | None:
    """Why ``recipient`` is neither an address nor a receiver reference (None: it is one)."""
    if _ADDRESS.match(recipient) or _REFERENCE.match(recipient):
        return None
    if recipient.lower().startswith(PREFIX) and _REFERENCE.match(recipient.lower()):
        return f"{recipient!r}: receiver names are lower-case (write {recipient.lower()!r})"
    return (
        f"{recipient!r} is neither an address (user@example.org, without ':') nor a receiver"
        " (receiver:NAME, NAME of a-z 0-9 - _)"
    )


class _Receiver(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"
):
    # A private CA's certificate(s), PEM, to verify this receiver's TLS certificate with.
    ca_file: Optional[str] = None
    # http:// to another machine sends credentials and alerts unencrypted: only when set.
    allow_plaintext: bool = False
    # Seconds to wait for the answer, and for the connection to open.
    timeout: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    connect_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0

    def __post_init__(self) -> None:
        for key in ("ca_file", "url_file", "secret_file", "token_file", "password_file"):
            value = getattr(self, key, None)
            if value is not None and not value.startswith("/"):
                raise ValueError(f"{key} {value!r} is not an absolute path: write it from /")


class WebhookReceiver(_Receiver, frozen=True, tag="webhook"):
    """Standard Webhooks v1: a signed JSON POST (docs/channels.md has its schema)."""

    secret_file: str
    url: Optional[str] = None
    url_file: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.url is None) == (self.url_file is None):
            raise ValueError("a webhook receiver takes url or url_file (a secret URL), one of them")
        if self.url is not None:
            _check_plain_url("url", self.url, self.allow_plaintext)


class SlackReceiver(_Receiver, frozen=True, tag="slack"):
    url_file: str


class MattermostReceiver(_Receiver, frozen=True, tag="mattermost"):
    url_file: str


class DiscordReceiver(_Receiver, frozen=True, tag="discord"):
    url_file: str


class TeamsReceiver(_Receiver, frozen=True, tag="teams"):
    """A Teams Workflows webhook ("Post to a channel when a webhook request is received")."""

    url_file: str


class TelegramReceiver(_Receiver, frozen=True, tag="telegram"):
    token_file: str
    # A chat's number (groups are negative) or a public channel's @name.
    chat_id: Union[int, Annotated[str, msgspec.Meta(pattern=r"^(-?\d{1,20}|@[A-Za-z]\w{3,31})$")]]
    # The Bot API server: Telegram's, or one of your own (telegram-bot-api --local).
    api_url: str = "https://api.telegram.org"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_plain_url("api_url", self.api_url, self.allow_plaintext)


class NtfyReceiver(_Receiver, frozen=True, tag="ntfy"):
    topic: Annotated[str, msgspec.Meta(pattern=r"^[-_A-Za-z0-9]{1,64}$")]
    # The server (its root, or where a reverse proxy publishes it).
    url: str = "https://ntfy.sh"
    # An access token (tk_…), or a user and password: one of the two, or none.
    token_file: Optional[str] = None
    username: Optional[str] = None
    password_file: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_plain_url("url", self.url, self.allow_plaintext)
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        if self.token_file is not None and self.username is not None:
            raise ValueError("token_file and username/password_file exclude each other")


class AppriseReceiver(_Receiver, frozen=True, tag="apprise"):
    """One Apprise URL (pover://…, gotify://…, matrixs://…), read from ``url_file``."""

    url_file: str


# Union[...], not A | B: a module-level alias is evaluated at import, where the host's
# Python 3.9 has no `|` between classes (this module is the host side's: schemas/config.py).
Receiver = Union[
    WebhookReceiver,
    SlackReceiver,
    MattermostReceiver,
    DiscordReceiver,
    TeamsReceiver,
    TelegramReceiver,
    NtfyReceiver,
    AppriseReceiver,
]
Kind = Literal["webhook", "slack", "mattermost", "discord", "teams", "telegram", "ntfy", "apprise"]
KINDS: Final = tuple(kind.__struct_config__.tag for kind in get_args(Receiver))


def kind_of(receiver: Receiver) -> str:
    return str(receiver.__struct_config__.tag)


def _check_plain_url(key: str, url: str, allow_plaintext: bool) -> None:
    """A URL written in the TOML: http(s), a host, no credentials (those go in files), and
    https:// unless on loopback or ``allow_plaintext``.

    Raises:
        ValueError: naming ``key``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key}: expected an https:// URL, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{key}: no user or password in the URL: they belong in a file")
    refusal = plaintext_refusal(key, parts.hostname, encrypted=parts.scheme == "https",
                                allow_plaintext=allow_plaintext, plain="http://",
                                what="the alerts", fix="use https://")  # fmt: skip
    if refusal:
        raise ValueError(refusal)


def secret_files(name: str, receiver: Receiver) -> list[tuple[str, str]]:
    """(key, path) of every secret file ``receiver`` names."""
    keys = ("url_file", "secret_file", "token_file", "password_file")
    return [(f"$.receiver.{name}.{key}", path) for key in keys
            if (path := getattr(receiver, key, None)) is not None]  # fmt: skip


@dataclass(frozen=True)
class Resolved:
    """A receiver with its secrets read and its URL checked: what a channel is built from.

    ``url`` may hold a secret and is never shown; ``shown`` is what logs, errors and
    ``check-config`` may print (``scheme://host[:port]``); ``secrets`` is every secret value,
    which the channel scrubs from any text it makes.
    """

    name: str
    kind: str
    url: str
    shown: str
    secrets: tuple[str, ...]
    keys: tuple[str, ...] = ()  # a webhook's signing keys (whsec_…)
    bearer: Optional[str] = None  # ntfy: an access token
    basic: Optional[tuple[str, str]] = None  # ntfy: a user and its password


def resolve(name: str, receiver: Receiver) -> Resolved:
    """Read ``receiver``'s secrets and check where it posts (shape and transport).

    Raises:
        ConfigError: a secret file is missing, too open or empty, or the URL is unusable,
            naming the key (``$.receiver.NAME.url_file``) and never the URL's secret part.
    """
    key = f"$.receiver.{name}"
    kind = kind_of(receiver)
    secrets: list[str] = []
    keys: tuple[str, ...] = ()
    bearer: Optional[str] = None
    basic: Optional[tuple[str, str]] = None
    if isinstance(receiver, TelegramReceiver):
        token = _secret(read_secret(receiver.token_file, f"{key}.token_file"), key, "token_file")
        secrets.append(token)
        url, url_key = f"{receiver.api_url.rstrip('/')}/bot{token}/sendMessage", "api_url"
    elif isinstance(receiver, NtfyReceiver):
        url, url_key = receiver.url, "url"
        if receiver.token_file is not None:
            bearer = _secret(read_secret(receiver.token_file, f"{key}.token_file"), key,
                             "token_file")  # fmt: skip
            secrets.append(bearer)
        elif receiver.password_file is not None and receiver.username is not None:
            password = read_secret(receiver.password_file, f"{key}.password_file")
            basic = (receiver.username, _secret(password, key, "password_file"))
            secrets.append(basic[1])
    elif isinstance(receiver, WebhookReceiver) and receiver.url is not None:
        url, url_key = receiver.url, "url"
    else:
        path = str(getattr(receiver, "url_file", ""))
        url = _secret(read_secret(path, f"{key}.url_file"), key, "url_file")
        secrets.append(url)
        url_key = "url_file"
    if isinstance(receiver, WebhookReceiver):
        keys = tuple(read_secret_lines(receiver.secret_file, f"{key}.secret_file"))
        secrets.extend(keys)
        _check_signing_keys(keys, f"{key}.secret_file")
    shown = _shown(url) if kind != "apprise" else url.split("://", 1)[0] + "://"
    if kind != "apprise":
        _check_url(f"{key}.{url_key}", kind, url, receiver)
    return Resolved(name, kind, url, shown, tuple(s for s in secrets if s), keys, bearer, basic)


def _secret(value: str, key: str, field: str) -> str:
    if not value.strip():
        raise ConfigError(f"{key}.{field}: the file is empty: write the secret in it")
    return value.strip()


def _check_signing_keys(keys: tuple[str, ...], key: str) -> None:
    """Raises: ConfigError: a line is no ``whsec_`` key of 24 to 64 bytes (base64)."""
    import base64  # noqa: PLC0415 - only a webhook needs it
    import binascii  # noqa: PLC0415

    for number, line in enumerate(keys, start=1):
        try:
            raw = base64.b64decode(line.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if not line.startswith("whsec_") or not 24 <= len(raw) <= 64:
            raise ConfigError(
                f"{key}: line {number} is no signing key: write whsec_ and 24 to 64 random"
                " bytes in base64 (python3 -c 'import base64,os;"
                ' print("whsec_" + base64.b64encode(os.urandom(32)).decode())\')'
            )


def _shown(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what may be printed of a secret URL."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host or '?'}{port}"


# Office 365 connectors ("Incoming Webhook" connectors) Microsoft retired for Workflows.
_OFFICE_CONNECTOR: Final = re.compile(
    r"(^|\.)webhook\.office\.com$|^outlook\.office(365)?\.com$", re.IGNORECASE
)
_DISCORD_HOSTS: Final = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")


def url_problem(kind: str, url: str) -> str | None:
    """Why ``url`` cannot be a ``kind`` receiver's URL (None: its shape is fine); the reason
    shows the URL only as ``scheme://host``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "does not hold an https:// URL"
    host, path = parts.hostname.lower(), parts.path
    if kind == "teams" and _OFFICE_CONNECTOR.search(host):
        return (
            f"{_shown(url)} is an Office 365 connector URL, which Microsoft retired: in Teams,"
            " add a Workflows webhook to the channel (the template 'Send webhook alerts to a"
            " channel') and put the URL it gives (with sig=) in this file"
        )
    if kind == "slack" and host == "hooks.slack.com" and not path.startswith("/services/"):
        return "is no Slack incoming-webhook URL (https://hooks.slack.com/services/…)"
    if (
        kind == "discord"
        and host in _DISCORD_HOSTS
        and not re.match(r"^/api/(v\d+/)?webhooks/\d+/[\w-]+/?$", path)
    ):
        return "is no Discord webhook URL (https://discord.com/api/webhooks/ID/TOKEN)"
    if kind in ("slack", "mattermost", "discord", "teams") and len(path.strip("/")) < 8:
        return f"has no webhook path after {_shown(url)}: copy the whole URL the service gave"
    return None


def _check_url(key: str, kind: str, url: str, receiver: Receiver) -> None:
    """Raises: ConfigError: the URL's shape, or plain http:// off loopback, or a ``ca_file``
    with plain http://."""
    why = url_problem(kind, url)
    if why:
        raise ConfigError(f"{key}: {why}")
    parts = urlsplit(url)
    refusal = plaintext_refusal(
        key,
        parts.hostname,
        encrypted=parts.scheme == "https",
        allow_plaintext=receiver.allow_plaintext,
        plain="http://",
        what="its credentials and the alerts",
        fix="use https://",
    )
    if refusal:
        raise ConfigError(refusal)
    if receiver.ca_file is not None and parts.scheme != "https":
        raise ConfigError(f"{key}: ca_file is set but the URL is plain http://: use https://")
