"""The question a user gets, and the escalation a "No" sends: notices, and mails from templates.

Both are short: where, when, from what, with which key. The question carries two links,
"Yes, it was me" and "No, it wasn't me", each to a confirm page whose form a person posts
(``consumer/web/``); the escalation says who disowned which login, when, from which client,
and whether the answers look like a mail scanner's. Every value a host or a browser chose
goes through ``display.visible`` (``QuestionView``, ``EscalationView``) before a template or
a channel sees it; HTML is escaped by Jinja's autoescape. Mails use the templates
``question.*.j2`` and ``escalation.*.j2`` (operators may override them, ``[render]
templates``); every other channel formats the notice in code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Final

import jinja2

from consumer.channels.mail_headers import mail, sender_address
from consumer.channels.mail_templates import load_templates, template_environment
from consumer.core.decisions import Decision
from consumer.core.display import visible
from consumer.core.notice import Field, Notice
from consumer.questions.decide import DISOWNED, LIKELY_SCANNER
from consumer.questions.table import Question
from schemas.config import Config
from schemas.errors import PermanentSendError
from schemas.receivers import reference

TEMPLATE_NAMES: Final = tuple(
    f"{kind}.{part}.j2"
    for kind in ("question", "escalation")
    for part in ("subject", "txt", "html")
)
BODY: Final = 512
SHORT: Final = 40


@dataclass(frozen=True)
class QuestionView:
    event_id: str
    user: str
    user_short: str
    host: str
    host_short: str
    when: str
    source: str
    key: str
    yes_url: str
    no_url: str
    answer_by: str
    recipient: str


@dataclass(frozen=True)
class EscalationView:
    event_id: str
    user: str
    host: str
    host_short: str
    user_short: str
    when: str
    source: str
    key: str
    asked: str
    answered: str
    client: str
    agent: str
    scanner: bool
    answers: tuple[str, ...]
    reason: str
    recipient: str


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _source(q: Question) -> str:
    return visible(q.client_ip, BODY) or "(local)"


def question_view(q: Question, yes_url: str, no_url: str) -> QuestionView:
    return QuestionView(
        event_id=q.id, user=visible(q.user, BODY) or "(none)", user_short=visible(q.user, SHORT),
        host=visible(q.host, BODY), host_short=visible(q.host, SHORT), when=_when(q.login_at),
        source=_source(q), key=visible(q.fingerprint, 80), yes_url=yes_url, no_url=no_url,
        answer_by=_when(q.expires_at), recipient=visible(q.asked, 320),
    )  # fmt: skip


def escalation_view(
    q: Question,
    decision: Decision,
    answers: list[tuple[str, datetime, str, str]],
) -> EscalationView:
    """The escalation of ``q``'s "No" for one recipient; ``answers``: every answer so far."""
    last_no = next((a for a in reversed(answers) if a[0] == "no"), None)
    answered, client, agent = ("", "", "") if last_no is None else (
        _when(last_no[1]), visible(last_no[2], 80), visible(last_no[3], 200))  # fmt: skip
    return EscalationView(
        event_id=q.id, user=visible(q.user, BODY) or "(none)", host=visible(q.host, BODY),
        host_short=visible(q.host, SHORT), user_short=visible(q.user, SHORT),
        when=_when(q.login_at), source=_source(q), key=visible(q.fingerprint, 80),
        asked=visible(q.asked, 320), answered=answered, client=client, agent=agent,
        scanner=q.flag == LIKELY_SCANNER,
        answers=tuple(f"{a} at {_when(at)} from {visible(c, 80)}" for a, at, c, _ in answers),
        reason=visible(decision.reason, 2 * BODY), recipient=decision.recipient or "",
    )  # fmt: skip


class Messages:
    """Renders the question and the escalation for their targets (mail or a receiver).

    Raises (from the constructor):
        ConfigError: a template is missing or does not compile.
    """

    def __init__(self, config: Config) -> None:
        self.env = template_environment(config.render.templates)
        self.templates = load_templates(self.env, TEMPLATE_NAMES)
        self.sender = sender_address(config.smtp.from_)

    def question(self, q: Question, yes_url: str, no_url: str, key: str) -> Notice:
        """The notice (with its mail, for an address) asking ``q.asked``.

        Raises:
            PermanentSendError: a template failed.
        """
        view = question_view(q, yes_url, no_url)
        fields = (Field("User", view.user), Field("Host", view.host), Field("When", view.when),
                  Field("From", view.source), Field("Key", view.key),
                  Field("Yes, it was me", yes_url), Field("No, it wasn't me", no_url),
                  Field("Answer by", view.answer_by), Field("Event", q.id))  # fmt: skip
        data = {"question": _question_data(q), "links": {"yes": yes_url, "no": no_url}}
        mailed = self._mail(
            q.asked, "question", q.id, {"e": view}, [("X-Loginwatch-Question", q.id)]
        )
        return Notice(key=key, target=q.asked, type="loginwatch.question",
                      summary="Was this you?",
                      headline=(Field("as", view.user_short), Field("on", view.host_short),
                                Field("from", visible(q.client_ip, SHORT) or "local")),
                      fields=tuple(f for f in fields if f.value), data=data, priority="high",
                      tags=("question",), arrived=q.asked_at, mail=mailed)  # fmt: skip

    def escalation(
        self,
        q: Question,
        decision: Decision,
        answers: list[tuple[str, datetime, str, str]],
        key: str,
    ) -> Notice:
        """The escalation of ``q``'s "No" for ``decision.recipient``.

        Raises:
            PermanentSendError: a template failed, or the decision has no recipient.
        """
        if decision.recipient is None:
            raise PermanentSendError("an escalation needs a recipient")
        view = escalation_view(q, decision, answers)
        fields = (Field("User", view.user), Field("Host", view.host), Field("When", view.when),
                  Field("From", view.source), Field("Key", view.key), Field("Asked", view.asked),
                  Field("Said no", f"{view.answered} from {view.client}".strip()),
                  Field("Browser", view.agent),
                  Field("Note", "a yes and a no came within seconds: likely a mail scanner"
                        if view.scanner else ""),
                  Field("Why", view.reason), Field("Event", q.id))  # fmt: skip
        data = {"question": _question_data(q),
                "answers": [{"answer": a, "at": at.isoformat(), "client": c, "agent": g}
                            for a, at, c, g in answers]}  # fmt: skip
        mailed = self._mail(decision.recipient, "escalation", q.id, {"e": view},
                            [("X-Loginwatch-System", DISOWNED)])  # fmt: skip
        return Notice(key=key, target=decision.recipient, type="loginwatch.escalation",
                      summary="NOT THEM: login disowned",
                      headline=(Field("of", view.user_short), Field("on", view.host_short)),
                      fields=tuple(f for f in fields if f.value), data=data, priority="high",
                      tags=(DISOWNED,), arrived=q.answered_at, mail=mailed)  # fmt: skip

    def _mail(
        self,
        target: str,
        kind: str,
        ident: str,
        context: dict[str, object],
        marks: list[tuple[str, str]],
    ) -> EmailMessage | None:
        if reference(target) is not None:
            return None
        subject, text, html = (self._render(f"{kind}.{part}.j2", context)
                               for part in ("subject", "txt", "html"))  # fmt: skip
        return mail(self.sender, target, subject, about=(kind, ident), marks=marks, text=text,
                    html=html)  # fmt: skip

    def _render(self, name: str, context: dict[str, object]) -> str:
        try:
            return self.templates[name].render(context)
        except jinja2.TemplateError as exc:
            raise PermanentSendError(f"template {name}: {type(exc).__name__}: {exc}") from None


def _question_data(q: Question) -> dict[str, Any]:
    return {"id": q.id, "host": q.host, "user": q.user, "client_ip": q.client_ip,
            "client_port": q.client_port, "fingerprint": q.fingerprint,
            "login_at": q.login_at.isoformat(), "asked": q.asked,
            "asked_at": q.asked_at.isoformat(), "verdict": q.verdict,
            "flag": q.flag}  # fmt: skip
