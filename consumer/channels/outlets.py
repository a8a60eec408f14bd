"""Every target's channel in one place: mail for the addresses, one per ``[receiver.NAME]``.

``open_outlets(config)`` builds them all when a worker or a digest scheduler starts (each
receiver's secrets read and its URL checked then, so a bad one stops the start with a line
naming its key); ``Outlets`` is the one ``Channel`` the pipeline and the digest hold, and
hands each notice to its target's channel. This module and ``base`` are what other folders
import of ``channels`` (its ``__init__``'s rule): never a channel module itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import msgspec

from consumer.channels import discord, mattermost, ntfy, slack, teams, telegram, webhook
from consumer.channels.apprise_channel import AppriseChannel
from consumer.channels.base import Channel
from consumer.channels.http import Poster
from consumer.channels.mail import SmtpSender
from consumer.core.notice import Notice
from schemas.config import Config
from schemas.errors import ConfigError, PermanentSendError
from schemas.receivers import (
    AppriseReceiver,
    NtfyReceiver,
    Receiver,
    Resolved,
    TelegramReceiver,
    WebhookReceiver,
    kind_of,
    reference,
    resolve,
    secret_files,
)


class Outlets:
    """The ``Channel`` for every target: ``mail`` for addresses, ``receivers`` by name."""

    def __init__(self, mail: Channel, receivers: Mapping[str, Channel]) -> None:
        self.mail = mail
        self.receivers = dict(receivers)

    def deliver(self, notice: Notice) -> None:
        """Raises: TransientSendError, PermanentSendError (the target's channel's, or
        PermanentSendError for a receiver the config does not define)."""
        name = reference(notice.target)
        channel = self.mail if name is None else self.receivers.get(name)
        if channel is None:
            raise PermanentSendError(f"{notice.target}: no [receiver.{name}] in the config")
        channel.deliver(notice)

    def close(self) -> None:
        for channel in (self.mail, *self.receivers.values()):
            channel.close()


def open_receiver(name: str, receiver: Receiver, *, attempts: int = 3) -> Channel:
    """The channel of ``[receiver.NAME]``, its secrets read and its URL checked.

    Raises:
        ConfigError: a secret file, the URL, its transport or ``ca_file`` is unusable.
    """
    resolved = resolve(name, receiver)
    if isinstance(receiver, AppriseReceiver):
        return AppriseChannel(resolved)
    poster = _poster(resolved, receiver, attempts)
    if isinstance(receiver, WebhookReceiver):
        return webhook.WebhookChannel(resolved, poster)
    if isinstance(receiver, TelegramReceiver):
        return telegram.channel(resolved, poster, receiver)
    if isinstance(receiver, NtfyReceiver):
        return ntfy.channel(resolved, poster, receiver)
    chats: dict[str, Callable[[Resolved, Poster], Channel]] = {
        "slack": slack.channel,
        "mattermost": mattermost.channel,
        "discord": discord.channel,
        "teams": teams.channel,
    }
    return chats[kind_of(receiver)](resolved, poster)


def _poster(resolved: Resolved, receiver: Receiver, attempts: int) -> Poster:
    auth = httpx.BasicAuth(*resolved.basic) if resolved.basic else None
    bearer = {"Authorization": f"Bearer {resolved.bearer}"} if resolved.bearer else None
    return Poster(resolved, ca_file=receiver.ca_file, timeout=receiver.timeout,
                  connect_timeout=receiver.connect_timeout, attempts=attempts, auth=auth,
                  headers=bearer)  # fmt: skip


def open_outlets(config: Config, *, attempts: int = 3, mail: Channel | None = None) -> Outlets:
    """The SMTP sender (or ``mail``) and every receiver's channel, built now.

    Raises:
        ConfigError: the SMTP password or a receiver is unusable (naming the key).
    """
    opened: dict[str, Channel] = {}
    try:
        for name, receiver in config.receiver.items():
            opened[name] = open_receiver(name, receiver, attempts=attempts)
        return Outlets(mail or SmtpSender(config.smtp, attempts=attempts), opened)
    except BaseException:
        for channel in opened.values():
            channel.close()
        raise


def describe(name: str, receiver: Receiver) -> str:
    """One line for ``check-config``: the receiver's kind, where it posts (the host only)
    and where its secrets are; its channel is built (and closed) to check them.

    Raises:
        ConfigError: as ``open_receiver``.
    """
    channel = open_receiver(name, receiver, attempts=1)
    channel.close()
    resolved = resolve(name, receiver)
    files = ", ".join(path for _, path in secret_files(name, receiver))
    tls = f", CA {receiver.ca_file}" if receiver.ca_file else ""
    return f"{name} ({resolved.kind}) → {resolved.shown}{tls}; secrets in {files}"


def open_target(config: Config, target: str, *, attempts: int = 1) -> Channel:
    """The channel of one target alone (``send-test``): the SMTP sender for an address,
    else the receiver's.

    Raises:
        ConfigError: no such receiver, or its channel cannot be built.
    """
    name = reference(target)
    if name is None:
        return SmtpSender(config.smtp, attempts=attempts)
    if name not in config.receiver:
        defined = ", ".join(sorted(config.receiver)) or "none"
        raise ConfigError(f"{target}: no [receiver.{name}] in the config (defined: {defined})")
    return open_receiver(name, config.receiver[name], attempts=attempts)


def preview(receiver: Receiver, notice: Notice) -> bytes:
    """What ``receiver`` would be sent for ``notice`` (its body; no secret, no URL)."""
    kind = kind_of(receiver)
    shaped: object
    if isinstance(receiver, WebhookReceiver):
        return webhook.body(notice)
    if isinstance(receiver, TelegramReceiver):
        shaped = telegram.payload(notice, receiver.chat_id)
    elif isinstance(receiver, NtfyReceiver):
        shaped = ntfy.payload(notice, receiver.topic)
    elif isinstance(receiver, AppriseReceiver):
        shaped = {"title": notice.title, "body": [f"{f.label}: {f.value}" for f in notice.fields]}
    else:
        formats = {"slack": slack, "mattermost": mattermost, "discord": discord, "teams": teams}
        shaped = formats[kind].payload(notice)
    return msgspec.json.format(msgspec.json.encode(shaped), indent=2)
