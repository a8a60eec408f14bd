"""Signed action links: what an alert or a question offers, and what ``loginwatch web`` checks.

A link is ``BASE/a/ACTION/TOKEN``. The token is itsdangerous's URL-safe signed JSON of
``Claims``: the action, its scope (a question's id; or the host, user and source an ack or
silence covers), the recipient it was made for, when it expires, and a random id that the
web service spends when the link's form is posted (single use). Each action signs with a
salt of its own, so a token made for ``answer-yes`` never verifies as ``answer-no`` or
``ack``, and altering the action in the path is a forgery like any other.

Keys rotate: the key file (``[web] secret_file``) holds one key per line; the last signs,
every one verifies. Append a new key, restart the worker and the web service, and drop the
oldest once the links it signed have expired (``[web] links_for``).

What a link *does* is decided elsewhere: a GET only shows a page (mail scanners fetch every
link), a POST of that page's form acts (``consumer/web/``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import itsdangerous
import msgspec

from schemas.errors import ConfigError, LinkError

ANSWER_YES: Final = "answer-yes"
ANSWER_NO: Final = "answer-no"
ACK: Final = "ack"
SILENCE_HOST: Final = "silence-host"
SILENCE_USER_SOURCE: Final = "silence-user-source"
ANSWERS: Final = (ANSWER_YES, ANSWER_NO)
# Actions that reduce alerting: only a signed-in operator may take them.
REDUCING: Final = (ACK, SILENCE_HOST, SILENCE_USER_SOURCE)
ACTIONS: Final = (*ANSWERS, *REDUCING)
MIN_KEY: Final = 32  # characters of each key


class Claims(msgspec.Struct, frozen=True, kw_only=True):
    """What a token says. ``scope`` values may be hostile text (a host or user name):
    pages show them made visible, and stores take them as parameters."""

    action: str
    scope: dict[str, str]
    recipient: str
    expires: int  # Unix seconds
    id: str  # spent once, by the POST of the link's form


class Signer:
    """Signs and verifies the tokens of every action with the keys of ``[web] secret_file``.

    Raises (from the constructor):
        ConfigError: no key, or a key shorter than ``MIN_KEY`` characters.
    """

    def __init__(self, keys: tuple[str, ...], key_name: str = "$.web.secret_file") -> None:
        if not keys:
            raise ConfigError(f"{key_name}: no key: write one random line of {MIN_KEY}+ characters")
        short = [i + 1 for i, key in enumerate(keys) if len(key) < MIN_KEY]
        if short:
            raise ConfigError(
                f"{key_name}: line {short[0]} is shorter than {MIN_KEY} characters: make keys"
                " with `openssl rand -base64 48`"
            )
        self._serializers = {
            action: itsdangerous.URLSafeSerializer(list(keys), salt=f"loginwatch.link.{action}")
            for action in ACTIONS
        }

    def sign(self, action: str, scope: Mapping[str, str], recipient: str, expires: datetime) -> str:
        """A token for ``action`` on ``scope``, made for ``recipient``, until ``expires``.

        Raises:
            ValueError: an unknown action.
        """
        claims = Claims(action=action, scope=dict(scope), recipient=recipient,
                        expires=int(expires.timestamp()), id=secrets.token_urlsafe(12))  # fmt: skip
        return self._serializer(action).dumps(msgspec.to_builtins(claims))

    def verify(self, action: str, token: str, now: datetime) -> Claims:
        """The claims of a ``token`` found under ``action``'s path, checked at ``now``.

        Raises:
            LinkError: ``forged`` (bad signature, another action's token, unknown action,
                malformed claims) or ``expired``.
        """
        if action not in self._serializers:
            raise LinkError("forged", f"no such action: {action[:40]!r}")
        try:
            raw = self._serializer(action).loads(token)
            claims = msgspec.convert(raw, Claims)
        except (itsdangerous.BadData, msgspec.ValidationError) as exc:
            raise LinkError(
                "forged", f"the link's signature does not hold: {type(exc).__name__}"
            ) from None
        if claims.action != action:
            raise LinkError("forged", "the link was made for another action")
        if now.timestamp() >= claims.expires:
            raise LinkError("expired", "the link has expired")
        return claims

    def _serializer(self, action: str) -> itsdangerous.URLSafeSerializer:
        try:
            return self._serializers[action]
        except KeyError:
            raise ValueError(f"unknown action {action!r}") from None


def link(base_url: str, action: str, token: str) -> str:
    """The URL of a token: ``BASE/a/ACTION/TOKEN``."""
    return f"{base_url.rstrip('/')}/a/{action}/{token}"
