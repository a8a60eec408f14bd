"""Render stage: an alert (or burst) e-mail from Jinja2 templates, text + HTML alternative.

Templates live in ``consumer/templates/`` (``alert.subject.j2``, ``alert.txt.j2``,
``alert.html.j2``, and ``burst.*``); a file of the same name in ``[render] templates``
overrides one. The environment is sandboxed, undefined names are errors, and ``*.html.j2``
is autoescaped. Event text reaches the templates only as data (``stages/view.py``), so it is
never evaluated as a template. The mail is built by ``headers.compose``: the subject is one
inert line (no encoded word from event text is ever decoded), and the serialized header block
is checked to be exactly ours before the mail can be sent.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Final

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from consumer.decisions import Action, Budget, Decision
from consumer.enriched import Enriched
from consumer.headers import mail, sender_address
from consumer.stages.view import alert_view
from schemas.config import Config
from schemas.errors import ConfigError, PermanentSendError

TEMPLATE_NAMES: Final = tuple(
    f"{kind}.{part}.j2" for kind in ("alert", "burst") for part in ("subject", "txt", "html")
)


class Renderer:
    """Builds the mails of one config; templates are compiled once, at construction.

    Raises (from the constructor):
        ConfigError: a template is missing or does not compile (names the file).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = template_environment(config.render.templates)
        self.templates = load_templates(self.env, TEMPLATE_NAMES)
        self.sender = sender_address(config.smtp.from_)
        self.flood_window = _duration_label(config.policy.flood_window.seconds)

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
            "e": alert_view(enriched, decision),
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

    def _render(self, name: str, context: dict[str, object]) -> str:
        try:
            return self.templates[name].render(context)
        except jinja2.TemplateError as exc:
            raise PermanentSendError(f"template {name}: {type(exc).__name__}: {exc}") from None


def template_environment(override_dir: str | None) -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment of every loginwatch mail (alerts, digests).

    Templates in ``override_dir`` (``[render] templates``) win over the packaged ones;
    ``*.html.j2`` is autoescaped; an undefined name is an error, not an empty string.
    The ``counted`` filter says "1 host" / "2 hosts".
    """
    loaders: list[jinja2.BaseLoader] = []
    if override_dir:
        loaders.append(jinja2.FileSystemLoader(override_dir))
    loaders.append(jinja2.PackageLoader("consumer", "templates"))
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["counted"] = counted
    return env


def counted(count: int, word: str, plural: str | None = None) -> str:
    """``{{ n|counted("host") }}``: "1 host", "2 hosts" (``plural`` for irregular words)."""
    return f"{count} {word if count == 1 else plural or word + 's'}"


def load_templates(env: jinja2.Environment, names: tuple[str, ...]) -> dict[str, jinja2.Template]:
    """Compile ``names`` up front, so a broken override fails at start, not at the first mail.

    Raises:
        ConfigError: a template is missing or does not compile (names the file and line).
    """
    try:
        return {name: env.get_template(name) for name in names}
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}"
        ) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template: {exc}") from None


def _duration_label(secs: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size and secs % size == 0:
            count = int(secs // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{secs:g} seconds"
