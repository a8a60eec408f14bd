"""The "was this you?" loop on real parts (tests/support/loop.py): a login → the user's
question by mail → its "No" posted the way a browser posts the confirm page's form → the
escalation in the security inbox within 2 s. And what a mail scanner does (GET and HEAD
of every link) changes nothing; a link that reduces alerting, without a session, leads to
the login page. The browser tier (tests/browser/) does the same with real Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from consumer.core.links import ANSWER_NO, Signer
from schemas.event import Outcome, PamType
from schemas.files import read_secret_lines
from tests.support.factories import event
from tests.support.loop import Loop, links_of, running_loop
from tests.support.services import Vhost, fresh_vhost
from tests.support.smtp_server import text_part
from tests.support.web_server import field, snapshot


@pytest.fixture(scope="module")
def loop(vhost: Vhost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """One loop for the module (each test logs in a user of its own)."""
    with (
        fresh_vhost("loginwatch-loop") as mine,
        running_loop(mine, tmp_path_factory.mktemp("loop")) as running,
    ):
        yield running


def verdict(loop: Loop, user: str) -> list[tuple[object, ...]]:
    return loop.store.db.execute("SELECT verdict FROM question WHERE username = ?", (user,))


def test_a_no_posted_like_a_browser_escalates_within_two_seconds(loop: Loop) -> None:
    loop.login(event(user="alice", host="web-01", client_port=41001))
    question = loop.mail_to("alice@corp.test")
    alert = loop.mail_to("ops@test.example", "alice@")
    assert "Was this you?" in str(question["Subject"])
    text = text_part(question)
    assert "web-01" in text and "192.0.2.10" in text and "SHA256:" in text
    links = links_of(question)
    assert set(links) == {"answer-yes", "answer-no"}
    assert {"ack", "silence-host", "silence-user-source"} <= set(links_of(alert))
    with httpx.Client(timeout=10) as browser:
        page = browser.get(links["answer-no"])
        assert page.status_code == 200 and "No, it wasn't me" in page.text
        assert "<script" not in page.text
        assert "script-src" not in page.headers["content-security-policy"]  # none at all
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        clicked = time.monotonic()
        done = browser.post(links["answer-no"], data={"nonce": field(page.text, "nonce")})
        assert done.status_code == 200 and "security team has been told" in done.text
        escalation = loop.mail_to("security@test.example", timeout=10)
        took = time.monotonic() - clicked
        again = browser.post(links["answer-no"], data={"nonce": field(page.text, "nonce")})
    assert took <= 2.0, f"the escalation took {took:.2f} s"
    assert "NOT THEM" in str(escalation["Subject"]) and "alice" in str(escalation["Subject"])
    assert "127.0.0.1" in text_part(escalation)  # the client that said no
    assert again.status_code == 410
    assert len(loop.to("security@test.example")) == 1
    assert verdict(loop, "alice") == [("no",)]


def test_a_failed_login_never_asks_anyone(loop: Loop) -> None:
    loop.login(event(user="alice2", pam_type=PamType.AUTH, outcome=Outcome.FAILURE,
                     client_port=41002))  # fmt: skip
    loop.login(event(user="bob", client_port=41003))  # a login: asked
    loop.mail_to("bob@corp.test")
    assert not loop.to("alice2@corp.test")
    assert verdict(loop, "bob") == [("",)] and verdict(loop, "alice2") == []


def test_a_scanners_get_and_head_of_every_link_change_nothing(loop: Loop) -> None:
    loop.login(event(user="carol", host="db-2", client_port=41004))
    links = {
        **links_of(loop.mail_to("carol@corp.test")),
        **links_of(loop.mail_to("ops@test.example", "carol@")),
    }
    assert len(links) == 5
    before = snapshot(loop.store.db)
    mails = len(loop.smtp.messages)
    with httpx.Client(timeout=10, follow_redirects=True) as scanner:
        for url in links.values():
            for _ in range(3):
                assert scanner.get(url).status_code == 200
                assert scanner.head(url).status_code == 200
    time.sleep(1.5)  # an escalation would be on its way by now
    assert snapshot(loop.store.db) == before
    assert len(loop.smtp.messages) == mails
    assert verdict(loop, "carol") == [("",)]


def test_an_ack_link_without_a_session_leads_to_the_login_page(loop: Loop) -> None:
    loop.login(event(user="dave", client_port=41005))
    links = links_of(loop.mail_to("ops@test.example", "dave@"))
    for action in ("ack", "silence-host", "silence-user-source"):
        gone = httpx.get(links[action], timeout=10)
        assert gone.status_code == 303
        assert gone.headers["location"].startswith(f"/login?next=/a/{action}/")
        login = httpx.get(links[action], timeout=10, follow_redirects=True)
        assert login.status_code == 200 and "Sign in" in login.text
        post = httpx.post(links[action], data={"nonce": "x", "csrf": "y"}, timeout=10)
        assert post.status_code == 303 and post.headers["location"].startswith("/login")
    assert loop.store.db.execute("SELECT COUNT(*) FROM silence") == [(0,)]


def test_forged_altered_and_expired_links_get_a_clear_page_and_a_4xx(loop: Loop) -> None:
    loop.login(event(user="erin", client_port=41006))
    no = links_of(loop.mail_to("erin@corp.test"))["answer-no"]
    base, token = no.rsplit("/", 1)
    cases = {
        "altered": (f"{base}/{token[:-6]}AAAAAA", 400, "not valid"),
        "another action": (no.replace("/answer-no/", "/answer-yes/"), 400, "not valid"),
        "to an ack": (no.replace("/answer-no/", "/ack/"), 400, "not valid"),
        "garbage": (f"{base}/x", 400, "not valid"),
    }
    keys = read_secret_lines(str(loop.config.parent / "web-keys"), "keys")
    (question_id,) = loop.store.db.execute("SELECT id FROM question WHERE username = 'erin'")[0]
    past = datetime.now(UTC) - timedelta(minutes=1)
    late = Signer(keys).sign(ANSWER_NO, {"question": question_id}, "erin@corp.test", past)
    cases["expired"] = (f"{base}/{late}", 410, "has expired")
    for case, (url, status, said) in cases.items():
        page = httpx.get(url, timeout=10)
        assert (page.status_code, said in page.text) == (status, True), case
        assert "Nothing was changed" in page.text
