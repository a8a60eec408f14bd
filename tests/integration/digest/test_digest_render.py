"""The digest mail: HTML that parses, a text part with every number, hostile text inert."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from consumer.channels import mail_headers
from consumer.channels.mail import SmtpSender
from consumer.digest.sender import WindowSender
from consumer.digest.tables import State
from consumer.digest.windows import Window, window_at
from tests.support.digest_support import (
    DAY1,
    OPS,
    day,
    digests_for,
    failure,
    login,
    make_config,
    store_events,
)
from tests.support.smtp_server import SmtpServer, html_part, text_part

HOSTILE_USER = "{{ 7*7 }}\r\nBcc: victim@example.net <b>x</b>\u202e"
HOSTILE_HOST = "web-<script>alert(1)</script>"


class Page(HTMLParser):
    """Collects the visible text and checks that every opened table cell is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[str] = []
        self.tags: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.scripts += tag == "script"

    def handle_data(self, data: str) -> None:
        self.data.append(data)


def mail(tmp_path: Path, *extra: str) -> tuple[WindowSender, EmailMessage]:
    digests = digests_for(make_config(str(tmp_path / "lw.db"), *extra))
    events = [login(day(0, h), f"web-{h}", "bob", f"192.0.2.{h}") for h in range(1, 6)]
    events += [login(day(0, 15), HOSTILE_HOST, HOSTILE_USER, "198.51.100.1")]
    events += [login(day(0, 3.5), "web-2", "root", "198.51.100.2")]
    events += [failure(day(0, 2) + timedelta(seconds=i), "web-1", "root", "203.0.113.9")
               for i in range(5)]  # fmt: skip
    store_events(digests, events, day(0, 16))
    window = window_at(digests.schedule, day(0, 1))
    summary = digests.summaries(window, dead=7)[OPS]
    return digests, digests.renderer.render(digests.view(summary), day(1))


def test_html_parses_and_the_text_part_carries_every_number(tmp_path: Path) -> None:
    _, msg = mail(tmp_path)
    html = msg.get_body(("html",))
    assert html is not None
    page = Page()
    page.feed(str(html.get_content()))
    page.close()
    assert page.tags.count("table") >= 3 and page.scripts == 0
    text = text_part(msg)
    html_numbers = {n for chunk in page.data for n in re.findall(r"\d+", chunk)}
    text_numbers = set(re.findall(r"\d+", text))
    assert html_numbers - text_numbers == set()
    for needle in ("events", "Root logins", "Failed logins: 5", "Bursts", "dead queue"):
        assert needle in text
    assert re.search(r"dead queue \(now\)\s+7", text)
    # Phone width: a fluid layout capped for desktops, with a viewport.
    assert 'name="viewport"' in str(html.get_content())
    assert "max-width:640px" in str(html.get_content())


def test_hostile_fields_stay_inert(tmp_path: Path) -> None:
    _, msg = mail(tmp_path)
    assert sorted(msg.keys()) == sorted([
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Loginwatch-Digest",
        "MIME-Version", "Content-Type",
    ])  # fmt: skip
    assert "\n" not in msg["Subject"] and "victim" not in msg["Subject"]
    html = msg.get_body(("html",))
    assert html is not None
    body = str(html.get_content())
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "<b>x</b>" not in body
    text = text_part(msg)
    # Shown, not evaluated; CR/LF and the bidi override made visible.
    assert "{{ 7*7 }}␍␊Bcc: victim@example.net <b>x</b>\\u202e" in text
    assert "49" not in text.replace("2026", "")
    assert "\u202e" not in body and "\u202e" not in text


def test_templates_are_overridable(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.subject.j2").write_text("Fleet: {{ d.failures }} failed logins\n")
    _, msg = mail(tmp_path, f'[render]\ntemplates = "{templates}"\n')
    assert msg["Subject"] == "Fleet: 5 failed logins"
    assert msg["Message-ID"].startswith("<20261126T060000Z-20261127T060000Z.digest.")


def test_the_subject_counts_in_words(tmp_path: Path) -> None:
    _, many = mail(tmp_path / "many")
    assert many["Subject"].startswith("loginwatch digest: 7 logins, 5 failed, 6 hosts (")
    digests = digests_for(make_config(str(tmp_path / "one.db")))
    store_events(digests, [login(day(0, 2), "web-1")], day(0, 3))
    summary = digests.summaries(window_at(digests.schedule, day(0, 1)), dead=0)[OPS]
    one = digests.renderer.render(digests.view(summary), day(1))
    assert one["Subject"].startswith("loginwatch digest: 1 login, 0 failed, 1 host (")


# A host name carrying an encoded word that, decoded, adds a Bcc header and ends the block.
EW_HOST = "=?utf-8?q?=0D=0ABcc:_v@evil.example=0D=0A=0D=0Ax?="
DIGEST_HEADERS = [
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Loginwatch-Digest",
    "MIME-Version", "Content-Type",
]  # fmt: skip


def _ew_digest(tmp_path: Path, port: int) -> tuple[WindowSender, Window]:
    templates = tmp_path / "templates"
    templates.mkdir()
    # An operator's subject that names the busiest host: event text in a header.
    (templates / "digest.subject.j2").write_text("Digest: {{ d.hosts[0].host }}\n")
    config = make_config(
        str(tmp_path / "lw.db"), f'[render]\ntemplates = "{templates}"\n', smtp_port=port
    )
    digests = digests_for(config, SmtpSender(config.smtp, attempts=1))
    store_events(digests, [login(day(0, 2), EW_HOST)], day(0, 3))
    return digests, window_at(digests.schedule, day(0, 1))


def test_an_encoded_word_in_a_digest_header_is_shown_not_decoded(tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        digests, window = _ew_digest(tmp_path, smtp.port)
        assert digests.send_window(window, day(1)) == 1
        (received,) = smtp.wait_for(1)
    msg = received.message
    assert list(msg.keys()) == DIGEST_HEADERS
    assert str(msg["Subject"]) == "Digest: " + EW_HOST.replace("=?", "=？")


def test_a_digest_whose_headers_break_fails_logged_and_unsent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mail_headers, "inert", lambda text: " ".join(text.split()))
    with SmtpServer() as smtp:
        digests, window = _ew_digest(tmp_path, smtp.port)
        assert digests.send_window(window, day(1)) == 0
        assert smtp.messages == [] and smtp.ehlos == 0
    assert digests.store.state(window, OPS) is State.FAILED
    assert "failed for good: mail header Subject holds a line break" in caplog.text


def _one_of_each(tmp_path: Path) -> EmailMessage:
    """One login, one failure: every count the source rows show is 1."""
    digests = digests_for(make_config(str(tmp_path / "one.db")))
    events = [login(day(0, 2), "web-1", "bob", "192.0.2.1"),
              failure(day(0, 3), "web-1", "root", "203.0.113.9")]  # fmt: skip
    store_events(digests, events, day(0, 4))
    summary = digests.summaries(window_at(digests.schedule, day(0, 1)), dead=0)[OPS]
    return digests.renderer.render(digests.view(summary), day(1))


def test_one_of_a_kind_reads_in_the_singular(tmp_path: Path) -> None:
    msg = _one_of_each(tmp_path)
    text = text_part(msg)
    assert "      1 login, 1 user, 1 host\n" in text
    assert "      1 failure, 1 user name, 1 host\n" in text
    page = Page()
    page.feed(html_part(msg))
    html = " ".join(page.data)
    assert "1 login" in html and "1 user, 1 host" in html and "1 failure" in html
    wrong = r"\b1 (logins|users|hosts|failures|user names|events|sources|root logins)\b"
    assert re.findall(wrong, text) == [] and re.findall(wrong, html) == []


def _heat_labels(tmp_path: Path, hours: float, start: float = 0) -> tuple[list[str], str, str]:
    """The heat map's hour labels, text and HTML, of a window ``hours`` long (a --send-now
    cut makes such windows), starting ``start`` hours after 07:00 Berlin."""
    digests = digests_for(make_config(str(tmp_path / f"heat{hours}-{start}.db")))
    begin = DAY1 + timedelta(hours=start)
    window = Window(begin, begin + timedelta(hours=hours))
    store_events(digests, [login(begin + timedelta(minutes=1), "web-1")], window.end)
    msg = digests.renderer.render(digests.view(digests.summaries(window, dead=0)[OPS]), day(1))
    text = text_part(msg)
    ruler = text.split("Activity per host", 1)[1].splitlines()[1]
    grid = re.search(r'<tr><td style="width:28%;"></td>(.*?)</tr>', html_part(msg))
    assert grid is not None
    html_labels = re.findall(r">(\d\d)?</td>", grid[1])
    return ruler.split(), text, " ".join(html_labels)


def test_heat_map_labels_every_hour_once_at_the_column_it_starts_in(tmp_path: Path) -> None:
    # 10 hours from 07:00 Berlin: 30-minute columns. The HTML used to label every third
    # column with its start hour: 07 08 10 11 13 14 16, so 09, 12 and 15 seemed missing.
    labels, text, html = _heat_labels(tmp_path, 10)
    hours = [f"{h:02d}" for h in range(7, 17)]
    assert labels == hours
    assert html.split() == hours
    assert "each column is 30 minutes; a label is the hour that starts in it" in text
    # Hour columns from 21:00: midnight passes, each hour once, in order.
    labels, _, html = _heat_labels(tmp_path, 8, start=14)
    assert labels == ["21", "22", "23", "00", "01", "02", "03", "04"] == html.split()
    # A window cut at 09:20 (--send-now) starts off the hour: 15-minute columns, each hour
    # labelled at the column it starts in, the first one 10.
    labels, text, _ = _heat_labels(tmp_path, 5, start=2 + 1 / 3)
    assert labels == ["10", "11", "12", "13", "14"]
    ruler = text.split("Activity per host", 1)[1].splitlines()[1]
    assert ruler.index("10") == 23 + 3 * 2  # over the third column, 09:50 to 10:05
