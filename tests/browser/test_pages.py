"""Real Chromium against ``loginwatch web``: the user's "No" clicked on the confirm page
reaches the security inbox within 2 s; a scanner's browser that loads every link and runs
whatever the pages carry changes nothing; an operator signs in from an ack link, makes the
silence, sees the operator page at desktop and phone widths, and expires a silence.
Screenshots go to artifacts/browser/ (gitignored); docs/img/ keeps one of each page."""

from __future__ import annotations

import time

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import PHONE, browser, screenshot
from tests.support.factories import event
from tests.support.loop import Loop, links_of
from tests.support.web_server import OPERATOR, PASSWORD, snapshot


def wait_for(chrome: WebDriver, text: str, timeout: float = 15) -> None:
    """Until the page (after a click's navigation) shows ``text``."""
    WebDriverWait(chrome, timeout).until(lambda d: text in d.page_source)


def test_no_confirmed_in_a_real_browser_reaches_the_security_inbox_within_two_seconds(
    loop: Loop,
) -> None:
    loop.login(event(user="alice", host="web-01", client_port=42001))
    links = links_of(loop.mail_to("alice@corp.test", "alice"))
    with browser() as chrome:
        chrome.get(links["answer-no"])
        assert "Was this you?" in chrome.title
        screenshot(chrome, "confirm-no")
        button = chrome.find_element(By.CSS_SELECTOR, "button[type=submit]")
        clicked = time.monotonic()
        button.click()
        escalation = loop.mail_to("security@test.example", timeout=10)
        took = time.monotonic() - clicked
        wait_for(chrome, "security team has been told")
        screenshot(chrome, "answered-no")
    print(f"escalation reached the security inbox {took:.2f} s after the click")
    assert took <= 2.0
    assert "NOT THEM" in str(escalation["Subject"])
    agent = loop.store.db.execute("SELECT agent, client FROM answer")
    assert agent and "Chrome" in str(agent[0][0]) and agent[0][1] == "127.0.0.1"


def test_a_scanner_browser_running_every_page_changes_nothing(loop: Loop) -> None:
    loop.login(event(user="bob", host="db-3", client_port=42002))
    question, alert = loop.mail_to("bob@corp.test"), loop.mail_to("ops@test.example", "bob@")
    links = {**links_of(question), **links_of(alert)}
    before, mails = snapshot(loop.store.db), len(loop.smtp.messages)
    with browser() as scanner:
        for url in links.values():
            scanner.get(url)
            scanner.execute_script("return document.readyState")
            # Whatever script a page carried would have run by now (ours carry none).
            assert not scanner.find_elements(By.TAG_NAME, "script")
        time.sleep(2)
    assert snapshot(loop.store.db) == before
    assert len(loop.smtp.messages) == mails


def test_an_operator_signs_in_from_an_ack_link_and_manages_silences(loop: Loop) -> None:
    loop.login(event(user="carol", host="db-4", client_port=42003))
    ack = links_of(loop.mail_to("ops@test.example", "carol@"))["ack"]
    with browser() as chrome:
        chrome.get(ack)
        assert "Sign in" in chrome.title
        screenshot(chrome, "login")
        chrome.find_element(By.ID, "name").send_keys(OPERATOR)
        chrome.find_element(By.ID, "password").send_keys(PASSWORD)
        chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(chrome, "Acknowledge this alert")
        cookie = chrome.get_cookie("loginwatch_session")
        assert cookie is not None
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
        screenshot(chrome, "act-ack")
        chrome.find_element(By.ID, "comment").send_keys("CHG-7 <b>reboot</b>")
        chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(chrome, "made until")
        page = chrome.page_source
        assert "made until" in page and "CHG-7 &lt;b&gt;reboot&lt;/b&gt;" in page
        (made,) = loop.store.db.execute("SELECT id, kind, created_by, matchers FROM silence")
        assert made[1:3] == ("ack", OPERATOR)
        assert '"hosts":["db-4"]' in made[3] and '"users":["carol"]' in made[3]
        screenshot(chrome, "operator-desktop")
        chrome.set_window_size(*PHONE)
        chrome.refresh()
        width = chrome.execute_script("return document.documentElement.scrollWidth")
        assert width <= PHONE[0], "no sideways scrolling on a phone"
        screenshot(chrome, "operator-phone")
        chrome.find_element(
            By.CSS_SELECTOR, f"form[action$='/silences/{made[0]}/expire'] button"
        ).click()
        wait_for(chrome, f"{made[1]} {made[0]} expired")
    ended = loop.store.db.execute("SELECT expired_by FROM silence WHERE id = ?", (made[0],))
    assert ended == [(OPERATOR,)]
