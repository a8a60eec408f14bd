"""Render stage: an alert (or burst) e-mail from Jinja2 templates, text + HTML alternative.

Templates live in ``consumer/templates/`` (``alert.subject.j2``, ``alert.txt.j2``,
``alert.html.j2``, ``burst.*``, and ``system.*`` for system alerts); a file of the same
name in ``[render] templates`` overrides one. The environment is sandboxed, undefined
names are errors, and ``*.html.j2`` is autoescaped. Event text reaches the templates only
as data (``stages/notice.py``, ``stages/system_view.py``), so it is never evaluated as a
template. The mail is built by ``headers.compose``: the subject is one inert line (no
encoded word from event text is ever decoded), and the serialized header block
is checked to be exactly ours before the mail can be sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Final

import jinja2

from consumer.channels.mail_headers import mail, sender_address
from consumer.channels.mail_templates import load_templates, template_environment
from consumer.core.decisions import Action, Budget, Decision
from consumer.core.enriched import Enriched
from consumer.core.links import ACK, SILENCE_HOST, SILENCE_USER_SOURCE, Signer, link
from consumer.core.notice import Notice
from consumer.core.system import SystemAlert
from consumer.stages.notice import alert_notice, alert_view
from consumer.stages.system_view import system_notice, system_view
from schemas.actions import span_seconds
from schemas.config import Config
from schemas.errors import PermanentSendError
from schemas.receivers import reference

TEMPLATE_NAMES: Final = tuple(
    f"{kind}.{part}.j2"
    for kind in ("alert", "burst", "system")
    for part in ("subject", "txt", "html")
)
# A link whose scope (host, user, source) is longer than this is not offered: a hostile
# 4 KiB user name would make a URL no mail client keeps whole.
LINK_SCOPE_MAX: Final = 300


class Renderer:
    """Builds the mails of one config; templates are compiled once, at construction.

    Raises (from the constructor):
        ConfigError: a template is missing or does not compile (names the file).
    """

    def __init__(self, config: Config, signer: Signer | None = None) -> None:
        """``signer``: signs the action links each alert offers (None: no links)."""
        self.config = config
        self.signer = signer
        self.links_for = timedelta(seconds=span_seconds(config.web.links_for))
        self.env = template_environment(config.render.templates)
        self.templates = load_templates(self.env, TEMPLATE_NAMES)
        self.sender = sender_address(config.smtp.from_)
        self.flood_window = _duration_label(config.policy.flood_window.seconds)
        self.speaker_window = _duration_label(config.worker.speaker_window.seconds)

    def render(
        self,
        enriched: Enriched,
        decision: Decision,
        now: datetime | None = None,
        *,
        subject_prefix: str = "",
    ) -> EmailMessage:
        """The mail for a mailing decision (IMMEDIATE → alert, BURST → burst).

        Raises:
            PermanentSendError: a template failed (undefined name, sandbox violation…),
                the decision sends no mail, or the headers did not survive serializing.
        """
        if decision.recipient is None or decision.action not in (Action.IMMEDIATE, Action.BURST):
            raise PermanentSendError(f"nothing to render for a {decision.action.value} decision")
        kind = "burst" if decision.action is Action.BURST else "alert"
        fleet = decision.burst is Budget.FLEET
        context = {
            "e": alert_view(enriched, decision, self.links(enriched, decision, now)),
            # The budget this burst closes: one host and kind, or one kind on every host.
            "flood_max": self.config.policy.fleet_max if fleet else self.config.policy.flood_max,
            "flood_fleet": fleet,
            "flood_kind": {"login": "login alert", "failure": "failed-login alert"}.get(
                enriched.event.kind, "alert"
            ),
            "flood_window": self.flood_window,
        }
        subject, text, html = (
            self._render(f"{kind}.{part}.j2", context) for part in ("subject", "txt", "html")
        )
        ident = enriched.event.id_hex
        marks = [("X-Loginwatch-Event", ident), ("X-Loginwatch-Action", decision.action.value)]
        return mail(
            self.sender,
            decision.recipient,
            subject_prefix + subject,
            about=("alert", ident),
            marks=marks,
            text=text,
            html=html,
            now=now,
        )

    def render_system(
        self, alert: SystemAlert, decision: Decision, now: datetime | None = None
    ) -> EmailMessage:
        """The mail of a system alert (``system.*``) for a mailing decision.

        Raises:
            PermanentSendError: as ``render``.
        """
        if decision.recipient is None or decision.action not in (Action.IMMEDIATE, Action.BURST):
            raise PermanentSendError(f"nothing to render for a {decision.action.value} decision")
        context: dict[str, object] = {"e": system_view(alert, decision, self.speaker_window)}
        subject, text, html = (
            self._render(f"system.{part}.j2", context) for part in ("subject", "txt", "html")
        )
        marks = [("X-Loginwatch-System", alert.kind),
                 ("X-Loginwatch-Action", decision.action.value)]  # fmt: skip
        return mail(self.sender, decision.recipient, subject, about=("system", alert.key),
                    marks=marks, text=text, html=html, now=now)  # fmt: skip

    def system_notice(
        self, alert: SystemAlert, decision: Decision, key: str, now: datetime | None = None
    ) -> Notice:
        """The notice of a system alert for its target: to an address, with the ``system.*``
        mail; to a receiver, the notice alone (its channel formats it).

        Raises:
            PermanentSendError: as ``render_system``.
        """
        mail = None
        if decision.recipient is not None and reference(decision.recipient) is None:
            mail = self.render_system(alert, decision, now)
        return system_notice(alert, decision, key, self.speaker_window, mail=mail)

    def notice(
        self,
        enriched: Enriched,
        decision: Decision,
        key: str,
        now: datetime | None = None,
        *,
        test: bool = False,
    ) -> Notice:
        """The notice of a mailing decision for its target: to an address, with the mail
        the templates render; to a receiver, the notice alone (its channel formats it).

        Raises:
            PermanentSendError: as ``render`` (for an address), or the decision sends nothing.
        """
        if decision.recipient is None or decision.action not in (Action.IMMEDIATE, Action.BURST):
            raise PermanentSendError(f"nothing to send for a {decision.action.value} decision")
        mail = None
        if reference(decision.recipient) is None:
            prefix = "[loginwatch test] " if test else ""
            mail = self.render(enriched, decision, now, subject_prefix=prefix)
        links = self.links(enriched, decision, now)
        return alert_notice(enriched, decision, key, mail=mail, test=test, links=links)

    def links(
        self, enriched: Enriched, decision: Decision, now: datetime | None = None
    ) -> tuple[tuple[str, str], ...]:
        """The alert's actions for its recipient, signed: ack it, silence its host for an
        hour, silence its user from its source for a day (``core/links.py``). Each opens
        the operator page; none acts on a GET."""
        base = self.config.web.base_url
        if self.signer is None or base is None or decision.recipient is None:
            return ()
        event = enriched.event
        expires = (now or datetime.now(UTC)) + self.links_for
        offered = [
            (
                "Acknowledge",
                ACK,
                {"host": event.host, "user": event.user, "source": event.client_ip},
            ),
            ("Silence this host for 1 hour", SILENCE_HOST, {"host": event.host}),
        ]
        if event.client_ip:
            offered.append(("Silence this user from this source for 1 day", SILENCE_USER_SOURCE,
                            {"user": event.user, "source": event.client_ip}))  # fmt: skip
        return tuple(
            (label, link(base, action, self.signer.sign(
                action, {**scope, "event": event.id_hex}, decision.recipient, expires)))
            for label, action, scope in offered
            if sum(len(v) for v in scope.values()) <= LINK_SCOPE_MAX
        )  # fmt: skip

    def _render(self, name: str, context: dict[str, object]) -> str:
        try:
            return self.templates[name].render(context)
        except jinja2.TemplateError as exc:
            raise PermanentSendError(f"template {name}: {type(exc).__name__}: {exc}") from None


def _duration_label(secs: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size and secs % size == 0:
            count = int(secs // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{secs:g} seconds"
