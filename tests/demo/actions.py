"""``make demo``, second part: acting on an alert, the whole loop on real parts.

A worker, ``loginwatch web`` and the digest scheduler on loopback, one SQLite store, a real
SMTP server keeping every mail in ``demo-out/actions/Maildir``. alice logs in (the real
hook); she gets "Was this you?"; her "No" is answered the way a browser answers it (the
confirm page fetched, its form posted); the escalation lands in the security inbox; an
operator follows the alert's "silence this host" link, is sent to sign in, signs in, makes
the silence; bob's next login to that host is silenced (and still in the digest).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.support.hookrun import ED25519_BLOB, PAM_ENV, run_hook
from tests.support.hookrun import write_config as host_config
from tests.support.loop import Loop, links_of, running_loop
from tests.support.services import fresh_vhost
from tests.support.smtp_server import text_part
from tests.support.web_server import OPERATOR, PASSWORD, field
from tests.support.worker_helpers import ROOT, loginwatch

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156"


def _login(hook: Path, user: str, port: int) -> None:
    run_hook(hook, {**PAM_ENV, "PAM_USER": user, "PAM_RHOST": "192.0.2.10",
                    "SSH_CONNECTION": f"192.0.2.10 {port} 198.51.100.5 22",
                    "SSH_AUTH_INFO_0": f"publickey ssh-ed25519 {ED25519_BLOB}\n"})  # fmt: skip


def _save(out: Path, name: str, html: str) -> str:
    path = out / "web" / f"{name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return str(path.relative_to(ROOT))


def _heading(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html, re.S)
    return found[1].strip() if found else "?"


def run(out: Path) -> int:
    """The loop, told step by step; 0 when every step did what it says."""
    out = out.resolve()  # the config names its files from /
    out.mkdir(parents=True, exist_ok=True)
    with fresh_vhost("loginwatch-demo-actions") as vhost:
        hosts = out / "hosts" / "web-01"
        hosts.mkdir(parents=True)
        hook = host_config(hosts, vhost.url(), host="web-01")
        with running_loop(vhost, out, digest=True, maildir=out / "Maildir") as loop:
            print(f"demo: worker, digest scheduler and loginwatch web at {loop.web.url}"
                  f" (logs: {out.relative_to(ROOT)}/*.log)")  # fmt: skip
            return _play(loop, hook, out)


def _play(loop: Loop, hook: Path, out: Path) -> int:
    print("  web-01   alice logs in (the real hook) from 192.0.2.10 with her ed25519 key")
    _login(hook, "alice", 50200)
    question = loop.mail_to("alice@corp.test", "alice")
    alert = loop.mail_to("ops@test.example", "alice@")
    links = links_of(question)
    print(f"\nalice@corp.test: {question['Subject']}")
    for line in text_part(question).splitlines()[:14]:
        print(f"    {line}")
    with httpx.Client(timeout=10, headers={"User-Agent": BROWSER}) as browser:
        page = browser.get(links["answer-no"])
        print(f"\n  GET  the \"No\" link → {page.status_code} {_heading(page.text)!r}"
              f" (a page with one button; {_save(out, 'confirm-no', page.text)})")  # fmt: skip
        clicked = time.monotonic()
        done = browser.post(links["answer-no"], data={"nonce": field(page.text, "nonce")})
        print(f"  POST its form → {done.status_code} {_heading(done.text)!r}")
        escalation = loop.mail_to("security@test.example", timeout=10)
        took = time.monotonic() - clicked
    print(f"\nsecurity@test.example, {took:.2f} s after the click: {escalation['Subject']}")
    for line in text_part(escalation).splitlines()[:12]:
        print(f"    {line}")
    silence = links_of(alert)["silence-host"]
    with httpx.Client(timeout=10) as operator:
        gone = operator.get(silence)
        where = gone.headers["location"].split("?")[0]
        print(f"\n  the alert's \"Silence this host for 1 hour\" link, not signed in →"
              f" {gone.status_code} to {where}")  # fmt: skip
        login = operator.get(f"{loop.web.url}{gone.headers['location']}")
        signed = operator.post(f"{loop.web.url}/login", data={
            "nonce": field(login.text, "nonce"), "name": OPERATOR, "password": PASSWORD,
            "next": gone.headers["location"].split("next=", 1)[1]})  # fmt: skip
        # The session cookie is Secure: httpx keeps it for https only, a browser on loopback
        # sends it over http too; hand it on as Chromium would.
        cookie = {"cookie": signed.headers["set-cookie"].split(";", 1)[0]}
        form = operator.get(silence, headers=cookie)
        print(f"  signed in as {OPERATOR} → {form.status_code} {_heading(form.text)!r}")
        made = operator.post(silence, headers=cookie, data={
            "nonce": field(form.text, "nonce"), "csrf": field(form.text, "csrf"), "for": "1h",
            "comment": "CHG-42 kernel update"})  # fmt: skip
        home = operator.get(f"{loop.web.url}{made.headers['location']}", headers=cookie)
        print(f"  POST the form → {made.status_code}; the operator page:"
              f" {_save(out, 'operator', home.text)}")  # fmt: skip
    listed = loginwatch("silence", "list", "--config", str(loop.config))
    print(
        "\n$ loginwatch silence list\n" + "\n".join(f"  {ln}" for ln in listed.stdout.splitlines())
    )
    time.sleep(1.2)  # the worker's silence_interval
    print("\n  web-01   bob logs in: the silence keeps it out of ops' inbox")
    _login(hook, "bob", 50201)
    decided = loop.worker.wait_for(r"silenced ops@test\.example", timeout=30)
    line = next(ln for ln in decided.splitlines() if "silenced ops@test.example" in ln)
    print(f"  worker: {line.split(': ', 1)[-1]}")
    print(f"\nEvery mail of this part: {(out / 'Maildir').relative_to(ROOT)}/new/")
    ok = took <= 2.0 and "NOT THEM" in str(escalation["Subject"]) and made.status_code == 303
    return 0 if ok else 1
