"""One envelope for every loginwatch mail (``headers.mail``): alerts and digests get the same
headers in the same order, then their own ``X-Loginwatch-*`` marks."""

from __future__ import annotations

from consumer.channels import mail_headers
from consumer.core.decisions import Action, Decision
from consumer.stages.render import Renderer
from schemas.config import parse_config
from tests.support.factories import T0, enriched

ENVELOPE = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"]
MIME = ["MIME-Version", "Content-Type"]
SENDER = mail_headers.sender_address("loginwatch@example.org")


def test_a_mail_has_the_envelope_then_its_marks() -> None:
    msg = mail_headers.mail(SENDER, "Ops@Example.org", "Digest =?x?= " + "x" * 300,
                       about=("digest", "1d:2026-11-26"), marks=[("X-Loginwatch-Digest", "k")],
                       text="t\n", html="<p>h</p>\n", now=T0)  # fmt: skip
    assert msg.keys() == [*ENVELOPE, "X-Loginwatch-Digest", *MIME]
    assert (msg["From"], msg["To"]) == ("loginwatch <loginwatch@example.org>", "Ops@Example.org")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert len(msg["Subject"]) == mail_headers.SUBJECT_MAX and "=?" not in msg["Subject"]
    assert msg["Message-ID"] == mail_headers.message_id(
        "digest", "1d:2026-11-26", "ops@example.org", "example.org"
    )


def test_an_alert_is_built_on_the_same_envelope() -> None:
    config = parse_config('[smtp]\nfrom = "loginwatch@example.org"')
    decision = Decision(action=Action.IMMEDIATE, reason="r", recipient="ops@example.org")
    msg = Renderer(config).render(enriched(), decision, now=T0)
    assert msg.keys() == [*ENVELOPE, "X-Loginwatch-Event", "X-Loginwatch-Action", *MIME]
