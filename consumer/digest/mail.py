"""Render a digest mail: ``digest.subject.j2``, ``digest.txt.j2``, ``digest.html.j2``.

The same sandboxed environment as the alerts (``stages/render.template_environment``): a
file of the same name in ``[render] templates`` overrides one, ``*.html.j2`` is autoescaped,
undefined names are errors. The mail is built by ``headers.mail``, as the alerts are (one
inert subject line, the serialized header block checked); the Message-ID is derived from the
window key and the recipient, so a re-sent digest is recognisably the same.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Final

import jinja2

from consumer.channels.mail_headers import SUBJECT_MAX, header_text, mail, sender_address
from consumer.channels.mail_templates import load_templates, template_environment
from consumer.digest.view import DigestView
from schemas.config import Config
from schemas.errors import PermanentSendError

TEMPLATE_NAMES: Final = tuple(f"digest.{part}.j2" for part in ("subject", "txt", "html"))


class DigestRenderer:
    """Builds digest mails; templates are compiled at construction.

    Raises (from the constructor):
        ConfigError: a template is missing or does not compile (names the file).
    """

    def __init__(self, config: Config) -> None:
        self.env = template_environment(config.render.templates)
        self.templates = load_templates(self.env, TEMPLATE_NAMES)
        self.sender = sender_address(config.smtp.from_)

    def parts(self, view: DigestView) -> tuple[str, str, str]:
        """Subject, text and HTML.

        Raises:
            PermanentSendError: a template failed at render time.
        """
        context = {"d": view}
        try:
            subject, text, html = (self.templates[n].render(context) for n in TEMPLATE_NAMES)
        except jinja2.TemplateError as exc:
            raise PermanentSendError(f"digest template: {type(exc).__name__}: {exc}") from None
        return header_text(subject, SUBJECT_MAX), text, html

    def render(self, view: DigestView, now: datetime | None = None) -> EmailMessage:
        """The digest mail for ``view.recipient``.

        Raises:
            PermanentSendError: a template failed at render time, or the headers did not
                survive serializing.
        """
        subject, text, html = self.parts(view)
        return mail(
            self.sender,
            view.recipient,
            subject,
            about=("digest", view.key),
            marks=[("X-Loginwatch-Digest", view.key)],
            text=text,
            html=html,
            now=now,
        )
