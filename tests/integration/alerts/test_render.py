"""Rendered mails: what a recipient sees, and that hostile event text stays inert."""

from __future__ import annotations

import base64
import email
import email.policy
import glob
import os
import re
import subprocess
import sys
from dataclasses import replace
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path

import pytest

from consumer.alerts.pipeline import Verdict, build_stages, process
from consumer.channels import mail_headers
from consumer.channels.mail import SmtpSender
from consumer.core.decisions import Action, Budget, Decision, sent_key
from consumer.core.display import visible
from consumer.core.enriched import FirstSeen
from consumer.core.identity import Identity
from consumer.stages.decode import Decoder, Incoming
from consumer.stages.render import Renderer
from schemas.config import SmtpConfig, parse_config
from schemas.errors import ConfigError, PermanentSendError
from schemas.event import LoginEvent, Outcome, PamType
from tests.support.factories import T0, enriched, event
from tests.support.smtp_server import SmtpServer

CONFIG = parse_config('[smtp]\nfrom = "loginwatch@example.org"\n[policy]\nflood_max = 5')
RENDERER = Renderer(CONFIG)
ALERT = Decision(
    action=Action.IMMEDIATE, reason="route #1 (everything) matches", recipient="ops@example.org"
)
HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Loginwatch-Event",
    "X-Loginwatch-Action",
    "MIME-Version",
    "Content-Type",
]


def round_trip(msg: EmailMessage) -> EmailMessage:
    """The mail as a client parses it from the bytes on the wire."""
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def subject(msg: EmailMessage) -> str:
    # A folded header unfolds with its leading blank, which mail clients do not show.
    return str(msg["Subject"]).strip()


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_a_login_alert_says_who_where_how_and_why() -> None:
    login = enriched(first_seen=FirstSeen(address=True, country=True))
    msg = round_trip(RENDERER.render(login, ALERT, now=T0))
    assert list(msg.keys()) == HEADERS
    assert msg["From"] == "loginwatch <loginwatch@example.org>"
    assert msg["To"] == "ops@example.org"
    assert subject(msg) == "NEW SOURCE: Login alice@web-01 from 192.0.2.10 (Berlin, DE)"
    assert msg["Date"] == "Thu, 26 Nov 2026 12:00:00 +0000"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = parts(msg)
    for needle in (
        "FIRST TIME: alice has never logged in from this address, country before",
        "Host       web-01 (198.51.100.5:22)",
        "From       192.0.2.10",
        "Name       laptop.example.net (verified",
        "Location   Berlin, Germany (DE), network 192.0.2.0/24",
        "Key        ssh-ed25519 SHA256:6oxXxr1ARRCTlYrAKg3irveyRrKtp51zVrZdjon9PmM",
        "Method     publickey",
        "Why you got this mail\n  route #1 (everything) matches",
        "If you do not recognise this login",
    ):
        assert needle in text
    assert "SHA256:6oxXxr1ARRCTlYrAKg3irveyRrKtp51zVrZdjon9PmM" in html
    assert "<strong>First time:</strong>" in html


def test_message_id_is_stable_per_event_and_recipient() -> None:
    first = RENDERER.render(enriched(), ALERT)
    again = RENDERER.render(enriched(), ALERT)
    other = RENDERER.render(
        enriched(), Decision(action=Action.IMMEDIATE, reason="r", recipient="sec@example.org")
    )
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"].endswith("@example.org>")
    assert first["X-Loginwatch-Event"] in first["Message-ID"]


def test_the_burst_mail_explains_flood_control() -> None:
    burst = Decision(
        action=Action.BURST,
        reason="… flood control: 5 mails within 10m",
        recipient="ops@example.org",
        sent=5,
    )
    msg = round_trip(RENDERER.render(enriched(), burst))
    assert (
        subject(msg) == "Flood control: 5 alerts within 10 minutes, further ones go to the digest"
    )
    text, _ = parts(msg)
    assert (
        "You have received 5 login alerts about host web-01 within 10 minutes (the limit is 5)."
        in text
    )
    assert "Nothing is lost" in text


def test_a_fleet_burst_of_failures_names_its_own_budget() -> None:
    # The fleet budget (one kind, all hosts) closes at flood_max_fleet, not flood_max.
    burst = Decision(
        action=Action.BURST,
        reason="… flood control: 55 failure alerts from all hosts within 10m",
        recipient="ops@example.org",
        sent=55,
        burst=Budget.FLEET,
    )
    text, html = parts(
        round_trip(
            RENDERER.render(enriched(event(pam_type=PamType.AUTH, outcome=Outcome.FAILURE)), burst)
        )
    )
    limit = RENDERER.config.policy.fleet_max
    expected = (
        f"You have received 55 failed-login alerts about all hosts together within 10 minutes"
        f" (the limit is {limit})."
    )
    assert expected in text
    assert expected in " ".join(html.split())


HOSTILE = {
    "header injection": ("evil\r\nBcc: x@example.org", "evil␍␊Bcc: x@example.org"),
    "html": ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    "jinja expression": ("{{ 7*7 }}", "{{ 7*7 }}"),
    "jinja statement": ("{% for x in range(9) %}x{% endfor %}",) * 2,
    "nul": ("a\x00b", "a␀b"),
    "bidi override": ("\u202eexe.txt", "\\u202eexe.txt"),
    "invalid utf-8 (escaped)": ("b\\xff\\xfeob", "b\\xff\\xfeob"),
    "4 KiB": ("A" * 4096, "A" * 512 + "… (3584 more characters)"),
}  # fmt: skip


@pytest.mark.parametrize(("raw", "shown"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_user_and_host_stay_inert(raw: str, shown: str) -> None:
    login = enriched(event(user=raw, host=raw, escaped=("user",)), rdns=raw, rdns_verified=False)
    msg = round_trip(RENDERER.render(login, ALERT))
    assert list(msg.keys()) == HEADERS  # no header added
    assert msg["To"] == "ops@example.org"
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert subject(msg).startswith("Login ")
    text, html = parts(msg)
    assert f"Who        {shown}\n" in text
    assert "49" not in text.replace(login.event.id_hex, "")  # {{ 7*7 }} was not evaluated
    assert f">{_html_escaped(shown)}</td>" in html
    assert "<script>" not in html
    raw_bytes = msg.as_bytes()
    for bad in (b"\x00", "\u202e".encode(), b"\nBcc:"):
        assert bad not in raw_bytes


def _html_escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def test_a_template_directory_overrides_one_template(tmp_path: Path) -> None:
    (tmp_path / "alert.subject.j2").write_text("[{{ e.host_short }}] {{ e.user_short }}\n")
    config = parse_config(f'[render]\ntemplates = "{tmp_path}"')
    msg = Renderer(config).render(enriched(event(user="{{ 7*7 }}")), ALERT)
    assert subject(msg) == "[web-01] {{ 7*7 }}"
    assert "If you do not recognise this login" in parts(msg)[0]  # packaged text part


def test_a_broken_template_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "alert.txt.j2").write_text("{% if %}\n")
    with pytest.raises(
        ConfigError, match=r"^template /.*/alert\.txt\.j2:1: Expected an expression"
    ):
        Renderer(parse_config(f'[render]\ntemplates = "{tmp_path}"'))


@pytest.mark.parametrize(
    "template", ["{{ e.no_such_field }}", "{{ e.__class__.__mro__ }}", "{{ ''.__class__ }}"]
)
def test_template_errors_and_sandbox_escapes_are_permanent(tmp_path: Path, template: str) -> None:
    (tmp_path / "alert.txt.j2").write_text(template)
    renderer = Renderer(parse_config(f'[render]\ntemplates = "{tmp_path}"'))
    with pytest.raises(PermanentSendError, match=r"template alert\.txt\.j2"):
        renderer.render(enriched(), ALERT)


@pytest.mark.integration
def test_hostile_mail_through_a_real_smtp_server() -> None:
    raw, shown = HOSTILE["header injection"]
    login = enriched(event(user=raw, host="<b>db</b>"))
    with SmtpServer() as smtp:
        config = SmtpConfig(host="127.0.0.1", port=smtp.port, from_="loginwatch@example.org")
        with SmtpSender(config) as sender:
            sender.send(RENDERER.render(login, ALERT))
        (received,) = smtp.wait_for(1)
    assert received.rcpt_tos == ("ops@example.org",)
    msg = received.message
    assert list(msg.keys()) == HEADERS
    assert subject(msg) == f"Login {shown}@<b>db</b> from 192.0.2.10 (Berlin, DE)"
    text, html = parts(msg)
    assert f"Who        {shown}" in text
    assert "&lt;b&gt;db&lt;/b&gt;" in html


def test_one_mail_per_event_and_recipient_whatever_its_kind() -> None:
    burst = Decision(action=Action.BURST, reason="r", recipient="OPS@example.org", sent=5)
    login = enriched()
    assert sent_key(login.event, burst) == sent_key(login.event, ALERT)
    assert (
        RENDERER.render(login, burst)["Message-ID"] == RENDERER.render(login, ALERT)["Message-ID"]
    )


# --- RFC 2047 encoded words in event text (issue 9, item 1) -----------------------------


def _b(charset: str, data: bytes, enc: str = "b") -> str:
    return f"=?{charset}?{enc}?{base64.b64encode(data).decode()}?="


SHORT = b"\r\nBcc: v@e.net"  # fits the subject's 40 characters as an encoded word
INJECTION = b"x\r\nBcc: victim@example.net\r\nX-Injected: 1\r\n\r\n<b>body</b>"
# (user, host, rdns): each case would add a header or end the header block on this Python's
# email (3.11.7, no CVE-2024-6923 fix) if the text reached a header as it is.
ENCODED_WORDS = {
    "b utf-8": (_b("utf-8", INJECTION), "web-01", ""),
    "B upper case": (_b("UTF-8", INJECTION, "B"), "web-01", ""),
    "q": ("=?utf-8?q?x=0D=0ABcc:_victim@example.net?=", "web-01", ""),
    "Q upper case": ("=?UTF-8?Q?x=0d=0aBcc:_victim@example.net?=", "web-01", ""),
    "q header terminator": ("=?utf-8?q?x=0D=0A=0D=0A<b>body</b>?=", "web-01", ""),
    "b header terminator": (_b("utf-8", b"\r\n\r\n"), "web-01", ""),
    "iso-8859-1": ("=?iso-8859-1?q?x=0D=0ABcc:_v@example.net?=", "web-01", ""),
    "utf-16": (_b("utf-16", "x\r\nBcc: v@example.net".encode("utf-16")), "web-01", ""),
    "unknown charset": ("=?x-nonesuch?q?x=0D=0ABcc:_v@example.net?=", "web-01", ""),
    "language tag": ("=?utf-8*en?q?x=0D=0ABcc:_v@example.net?=", "web-01", ""),
    "split across user and host": ("=?utf-8?q?=0D=0AX-Injected:", "_1?=", ""),
    "split across host and source": ("alice", "=?utf-8?q?=0D=0ABcc:_v@e.net", ""),
    "two words with folding blanks": (
        _b("utf-8", b"a\r\n") + " \t " + _b("utf-8", b"B: 1"),
        "web-01",
        "",
    ),
    "long enough to fold": ("A" * 30 + " " + _b("utf-8", INJECTION) + " " + "B" * 30, "web-01", ""),
    "non-ASCII forces email to encode": ("ünïcødé " + _b("utf-8", INJECTION), "wéb", ""),
    "rdns": ("alice", "web-01", _b("utf-8", INJECTION)),
}


OWN_WORD = re.compile(r"=\?utf-8\?[bq]\?[^?\s]*\?=")


def _raw_head(msg: EmailMessage) -> str:
    return msg.as_bytes().partition(b"\n\n")[0].decode("ascii")


@pytest.mark.parametrize(("user", "host", "rdns"), ENCODED_WORDS.values(), ids=ENCODED_WORDS)
def test_encoded_words_from_event_text_are_shown_never_decoded(
    user: str, host: str, rdns: str, tmp_path: Path
) -> None:
    # The subject names rDNS too, so every header-bound field is tried.
    (tmp_path / "alert.subject.j2").write_text(
        "{{ e.kind_label|capitalize }} {{ e.user }}@{{ e.host }} from {{ e.source }} {{ e.rdns }}\n"
    )
    renderer = Renderer(parse_config(f'[render]\ntemplates = "{tmp_path}"'))
    built = renderer.render(enriched(event(user=user, host=host), rdns=rdns or None), ALERT)
    msg = round_trip(built)
    assert list(msg.keys()) == HEADERS  # nothing added, the block did not end early
    shown = subject(msg)
    assert "\r" not in shown and "\n" not in shown and "Bcc" not in msg
    # The literal text, with each "=?" shown as "=？": a client decodes nothing of ours.
    literal = f"Login {visible(user)}@{host} from 192.0.2.10 {rdns}".replace("=?", "=？")
    assert shown == " ".join(literal.split())
    # On the wire, the only encoded words are email's own UTF-8 ones.
    assert "=?" not in OWN_WORD.sub("", _raw_head(built))
    text, _ = parts(msg)
    assert f"Who        {visible(user)}\n" in text  # the body shows it exactly


def test_a_header_that_breaks_on_the_wire_is_permanent_and_never_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last check holds on its own: with the neutraliser off, the mail dies, unsent."""
    monkeypatch.setattr(mail_headers, "inert", lambda text: " ".join(text.split()))
    login = enriched(event(user=_b("utf-8", SHORT)))
    with pytest.raises(PermanentSendError, match=r"mail header"):
        RENDERER.render(login, ALERT)
    # A mail built elsewhere, past compose: the sender refuses it before connecting.
    forged = EmailMessage()
    forged["From"] = "loginwatch@example.org"
    forged["To"] = "ops@example.org"
    forged["Subject"] = "Login " + _b("utf-8", INJECTION)
    forged.set_content("body\n")
    with SmtpServer() as smtp:
        config = SmtpConfig(host="127.0.0.1", port=smtp.port, from_="loginwatch@example.org")
        with SmtpSender(config) as sender, pytest.raises(PermanentSendError, match="Subject"):
            sender.send(forged)
        assert smtp.messages == [] and smtp.ehlos == 0


@pytest.mark.parametrize(
    "serialized",
    [
        b"From: a@example.org\r\nBcc: v@example.net\r\nSubject: x\r\n\r\nbody\r\n",
        b"From: a@example.org\r\n\r\nSubject: x\r\n\r\nbody\r\n",
        b"From: a@example.org\r\nSubject: x\ry\r\n\r\nbody\r\n",
        b"From: a@example.org\r\nSubject: =?utf-8?q?y?=\r\n\r\nbody\r\n",
    ],
    ids=["header added", "block ended early", "bare CR", "reads back otherwise"],
)
def test_the_wire_check_refuses_a_header_block_that_is_not_ours(
    serialized: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "x"

    def flatten(self: BytesGenerator, _msg: object, linesep: str | None = None) -> None:
        self._fp.write(serialized)  # type: ignore[attr-defined]

    monkeypatch.setattr(BytesGenerator, "flatten", flatten)
    with pytest.raises(PermanentSendError, match="mail header"):
        mail_headers.wire(msg)


class _Decoded(Decoder):
    """A decoder that hands back one event, whatever the body."""

    def __init__(self, login: LoginEvent, identity: Identity) -> None:
        super().__init__(identity)
        self.login = login

    def __call__(self, incoming: Incoming, /) -> LoginEvent:
        return self.login

    def message(self, incoming: Incoming, /) -> LoginEvent:
        return self.login


@pytest.mark.integration
def test_a_refused_header_block_is_a_dead_event_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The worker's own stages (``build_stages``): the reason the dead queue keeps, no mail."""
    monkeypatch.setattr(mail_headers, "inert", lambda text: " ".join(text.split()))
    login = event(user=_b("utf-8", SHORT))
    with SmtpServer() as smtp:
        config = parse_config(
            f'[store]\nurl = "{tmp_path / "lw.db"}"\n[enrich]\ndns = false\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nfrom = "loginwatch@example.org"\n'
            '[[route]]\nto = ["ops@example.org"]\nmode = "immediate"\n'
        )
        stages = build_stages(config)
        try:
            # The decoded event as it is (broker identity is not what this test is about).
            known = replace(stages, decode=_Decoded(login, stages.decode.identity))
            outcome = process(known, Incoming(b""))
        finally:
            stages.close()
        assert smtp.messages == [] and smtp.ehlos == 0
    assert outcome.verdict is Verdict.DEAD
    assert outcome.reason.startswith("ops@example.org: mail header Subject holds a line break")


_EVERY_PYTHON_CHECK = r"""
import base64, email, email.policy, sys
from email.message import EmailMessage
from consumer.channels import mail_headers
from schemas.errors import PermanentSendError
word = "=?utf-8?b?" + base64.b64encode(b"\r\nBcc: v@e.net\r\n\r\nx").decode() + "?="
msg = mail_headers.compose([("From", "a@example.org"), ("To", "b@example.org"),
                       ("Subject", "Login " + word)], "t\n", "<p>h</p>\n")
read = email.message_from_bytes(mail_headers.wire(msg), policy=email.policy.default)
assert list(read.keys()) == ["From", "To", "Subject", "MIME-Version", "Content-Type"]
assert str(read["Subject"]) == "Login " + word.replace("=?", "=\uff1f"), str(read["Subject"])
forged = EmailMessage()
forged["From"] = "a@example.org"
forged["Subject"] = "Login " + word
forged.set_content("x\n")
try:
    mail_headers.wire(forged)
except PermanentSendError:
    fixed = getattr(email.policy.default, "verify_generated_headers", False)
    print(sys.version.split()[0], "with" if fixed else "without", "the CVE-2024-6923 fix: ok")
else:
    raise SystemExit("a forged header block was not refused")
"""


def _pythons() -> list[str]:
    """This Python and every other 3.11+ here (Debian's has the email fix, 3.11.7 not)."""
    found = {sys.executable}
    candidates = ["/usr/bin/python3", *glob.glob("/root/.pyenv/versions/3.1[1-9]*/bin/python3")]
    for path in candidates:
        if os.access(path, os.X_OK):
            probe = subprocess.run(
                [path, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            if probe.stdout.strip() == "True":
                found.add(path)
    return sorted(found)


@pytest.mark.parametrize("python", _pythons())
def test_the_header_check_holds_with_and_without_the_email_fix(python: str) -> None:
    """Issue 9 item 7: requires-python stays >= 3.11, so the check must not lean on the fix."""
    root = Path(__file__).resolve().parents[3]
    run = subprocess.run([python, "-c", _EVERY_PYTHON_CHECK], capture_output=True, text=True,
                         timeout=60, check=False, env={"PYTHONPATH": str(root)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("the CVE-2024-6923 fix: ok\n")


def test_a_bcc_header_never_goes_out() -> None:
    """smtplib.send_message dropped Bcc; the checked bytes are sent as they are, so: refused."""
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Bcc"] = "hidden@example.org"
    msg.set_content("x\n")
    with pytest.raises(PermanentSendError, match="Bcc"):
        mail_headers.wire(msg)


def test_an_encoded_word_in_geoip_text_is_shown_not_decoded() -> None:
    """GeoIP text is hostile too (a crafted .mmdb): the packaged subject names the city."""
    city = "=?utf-8?q?=0D=0AB:_1?="
    msg = round_trip(RENDERER.render(enriched(city=city, country="=?x?b?DQo=?="), ALERT))
    assert list(msg.keys()) == HEADERS
    assert subject(msg) == (
        "Login alice@web-01 from 192.0.2.10 (=？utf-8?q?=0D=0AB:_1?=, =？x?b?DQo=？=)"
    )
