"""Render a digest mail: ``digest.subject.j2``, ``digest.txt.j2``, ``digest.html.j2``.

The same sandboxed environment as the alerts (``stages/render.template_environment``): a
file of the same name in ``[render] templates`` overrides one, ``*.html.j2`` is autoescaped,
undefined names are errors. The mail is built by ``headers.compose``, as the alerts are (one
inert subject line, the serialized header block checked); the Message-ID is derived from the
window key and the recipient, so a re-sent digest is recognisably the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

import jinja2

from consumer.digest.view import DigestView
from consumer.headers import compose, header_text
from consumer.model import message_id
from consumer.stages.render import SUBJECT_MAX, load_templates, template_environment
from schemas.config import Config
from schemas.errors import PermanentDelivery

TEMPLATE_NAMES: Final = tuple(f"digest.{part}.j2" for part in ("subject", "txt", "html"))


def digest_message_id(window_key: str, recipient: str, domain: str) -> str:
    return message_id("digest", window_key, recipient, domain)


class DigestRenderer:
    """Builds digest mails; templates are compiled at construction.

    Raises (from the constructor):
        ConfigError: a template is missing or does not compile (names the file).
    """

    def __init__(self, config: Config) -> None:
        self.env = template_environment(config.render.templates)
        self.templates = load_templates(self.env, TEMPLATE_NAMES)
        self.sender = Address("loginwatch", addr_spec=config.smtp.from_)

    def parts(self, view: DigestView) -> tuple[str, str, str]:
        """Subject, text and HTML.

        Raises:
            PermanentDelivery: a template failed at render time.
        """
        context = {"d": view}
        try:
            subject, text, html = (self.templates[n].render(context) for n in TEMPLATE_NAMES)
        except jinja2.TemplateError as exc:
            raise PermanentDelivery(f"digest template: {type(exc).__name__}: {exc}") from None
        return header_text(subject, SUBJECT_MAX), text, html

    def render(self, view: DigestView, now: datetime | None = None) -> EmailMessage:
        """The digest mail for ``view.recipient``.

        Raises:
            PermanentDelivery: a template failed at render time, or the headers did not
                survive serializing.
        """
        subject, text, html = self.parts(view)
        headers: list[tuple[str, str | Address]] = [
            ("From", self.sender),
            ("To", Address(addr_spec=view.recipient)),
            ("Subject", subject),
            ("Date", format_datetime(now or datetime.now(UTC))),
            ("Message-ID", digest_message_id(view.key, view.recipient, self.sender.domain)),
            ("Auto-Submitted", "auto-generated"),
            ("X-Loginwatch-Digest", view.key),
        ]
        return compose(headers, text, html)
