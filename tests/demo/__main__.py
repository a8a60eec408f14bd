"""``make demo``: loginwatch end to end on this machine, then everything stopped again.

What it starts (and stops, by pid, whatever happens): a private RabbitMQ vhost,
``loginwatch setup``, one ``loginwatch worker``, a real SMTP server (aiosmtpd)
that keeps every mail in a Maildir under ``demo-out/``. Then it plays logins
from three hosts, each with its own ``[host] name`` and spool: as root, real ssh
logins into one real sshd per host (tests/support/sshd.py: a private mount namespace
with its own PAM stack calling the real ``loginwatch-hook``); otherwise the
hook run with the environment pam_exec would give it. Ordinary logins, a root
login, a first-seen source and a burst of wrong passwords. It prints what each
inbox received and where the HTML parts lie.

Run: ``make demo`` (or ``.venv/bin/python -m tests.demo`` once RabbitMQ runs).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import mailbox
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from schemas import topology
from tests.support.hookrun import ED25519_BLOB, HOOK, PAM_ENV, run_hook, spooled
from tests.support.hookrun import write_config as host_config
from tests.support.services import fresh_vhost
from tests.support.smtp_server import free_port
from tests.support.sshd import TEST_USER, Sshd, hook_line
from tests.support.worker_helpers import ROOT, depth, loginwatch, running_worker

OUT = ROOT / "demo-out"

CENTRAL = """\
[broker]
url = "{url}"

[smtp]
host = "127.0.0.1"
port = {port}
from = "loginwatch@demo.example"

[store]
url = "{out}/store.db"

[enrich]
dns = false

[policy]
flood_max = 5
flood_window = "10m"

# Security sees every login and failure at once (flood control folds bursts).
[[route]]
to = ["security@demo.example"]
kinds = ["login", "failure"]
mode = "immediate"

# The web team hears about its own hosts.
[[route]]
to = ["web-team@demo.example"]
hosts = ["web-*"]
kinds = ["login"]
mode = "immediate"

# Whoever is on call hears of every root login.
[[route]]
to = ["oncall@demo.example"]
users = ["root"]
kinds = ["login"]
mode = "immediate"

# The DBAs want a calm digest only.
[[route]]
to = ["dba@demo.example"]
hosts = ["db-*"]
mode = "digest"
"""

KEY = f"publickey ssh-ed25519 {ED25519_BLOB}\n"


def pam_env(user: str, client: str, port: int, **more: str) -> dict[str, str]:
    env = {
        **PAM_ENV,
        "PAM_USER": user,
        "PAM_RHOST": client,
        "SSH_CONNECTION": f"{client} {port} 198.51.100.5 22",
        "SSH_AUTH_INFO_0": KEY,
    }
    env.update(more)
    return env


def play(hosts: dict[str, Path]) -> None:
    """The logins, in order, each through the real hook of its host."""
    logins = [
        ("web-01", pam_env("alice", "192.0.2.10", 50100), "alice logs in to web-01 (new source)"),
        ("web-01", pam_env("alice", "192.0.2.10", 50101), "alice again, same source"),
        ("db-1", pam_env("root", "198.51.100.77", 40022), "root logs in to db-1"),
        ("bastion", pam_env("bob", "203.0.113.5", 61000), "bob on the bastion (new source)"),
    ]
    for host, env, what in logins:
        print(f"  {host:<8} {what}")
        run_hook(hosts[host], env)
    failure = pam_env("admin", "203.0.113.66", 0, PAM_TYPE="auth", SSH_AUTH_INFO_0="")
    print("  bastion  8 failed passwords for 'admin' from 203.0.113.66")
    for n in range(8):
        failure["SSH_CONNECTION"] = f"203.0.113.66 {52000 + n} 198.51.100.5 22"
        run_hook(hosts["bastion"], failure, ("--outcome", "failure"))


# Each host's sshd: password failures reach the hook (the proven placement, with
# pam_unix's failure delay off for a quick demo), sessions reach it at open and close.
HOST_STACK = """\
auth  [success=2 default=ignore]  pam_unix.so nullok nodelay
{failure}auth  requisite  pam_deny.so
auth  required   pam_permit.so
account  required  pam_unix.so
session  required  pam_unix.so
{session}"""


def can_run_sshd() -> bool:
    return os.geteuid() == 0 and all(
        os.path.exists(tool) for tool in ("/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/unshare")
    )


def ssh(sshd: Sshd, user: str, source: str) -> None:
    """A key login from ``source`` (any 127.x address is this machine too)."""
    subprocess.run(
        [*sshd.ssh_args(user, "-o", "BatchMode=yes", "-b", source), "true"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=True,
    )


def wrong_password(sshd: Sshd, user: str, askpass: Path) -> None:
    """``ssh USER@…`` typing a wrong password through SSH_ASKPASS (no tty)."""
    env = {"PATH": "/usr/bin:/bin", "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    options = (
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "NumberOfPasswordPrompts=1",
        "-b",
        "127.0.0.66",
    )
    subprocess.run(
        [*sshd.ssh_args(user, *options), "true"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )


def play_ssh(hosts: dict[str, Path]) -> None:
    """The same story with real ssh logins, one real sshd per host (private mount namespaces)."""
    askpass = OUT / "askpass"
    askpass.write_text("#!/bin/sh\necho wrong-password\n")
    askpass.chmod(0o700)
    with contextlib.ExitStack() as stack:
        sshds = {}
        for name, config in hosts.items():
            pam = HOST_STACK.format(
                failure=hook_line(HOOK, config, "--outcome", "failure", kind="auth"),
                session=hook_line(HOOK, config),
            )
            sshds[name] = stack.enter_context(Sshd(pam, password_auth=name == "bastion"))
        steps = [
            ("web-01", TEST_USER, "127.0.0.1", f"{TEST_USER} logs in to web-01 (new source)"),
            ("web-01", TEST_USER, "127.0.0.1", f"{TEST_USER} again, same source"),
            ("db-1", "root", "127.0.0.1", "root logs in to db-1"),
            ("bastion", TEST_USER, "127.0.0.5", f"{TEST_USER} on the bastion from a new address"),
        ]
        for host, user, source, what in steps:
            print(f"  {host:<8} ssh {user}@{host} from {source}: {what}")
            ssh(sshds[host], user, source)
        print("  bastion  8 wrong passwords for 'admin' from 127.0.0.66")
        for _ in range(8):
            wrong_password(sshds["bastion"], "admin", askpass)


def settle(hosts: dict[str, Path], vhost_alerts: Callable[[], int], maildir: Path) -> None:
    """Wait until the spools are empty, the alerts queue drained and no mail came for 2 s."""
    deadline = time.monotonic() + 60
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = sum(1 for _ in (maildir / "new").iterdir()) if (maildir / "new").exists() else 0
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        busy = any(spooled(d) for d in hosts.values()) or vhost_alerts() > 0
        if not busy and time.monotonic() - quiet_since > 2:
            return
        time.sleep(0.2)


def report(maildir: Path) -> None:
    inboxes: dict[str, list[tuple[float, EmailMessage]]] = defaultdict(list)
    for raw in mailbox.Maildir(maildir, create=False):
        mail = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        inboxes[str(mail["To"])].append((raw.get_date(), mail))
    html_dir = OUT / "html"
    html_dir.mkdir(exist_ok=True)
    n = 0
    for inbox in sorted(inboxes):
        mails = [mail for _, mail in sorted(inboxes[inbox], key=lambda pair: pair[0])]
        print(f"\n{inbox}: {len(mails)} mail(s)")
        for mail in mails:
            n += 1
            html = mail.get_body(("html",))
            where = ""
            if html is not None:
                path = html_dir / f"{n:02d}.html"
                path.write_text(str(html.get_content()), encoding="utf-8")
                where = f"  → {path.relative_to(ROOT)}"
            print(f"  {str(mail['Subject']).strip()}{where}")
    print(f"\nEvery mail as sent: {maildir.relative_to(ROOT)}/new/ (Maildir)")


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    maildir = OUT / "Maildir"
    port = free_port()
    print(f"demo: SMTP server on 127.0.0.1:{port}, mails kept in {maildir.relative_to(ROOT)}")
    smtp = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smtp_server", str(port), str(maildir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(OUT / "smtp.log").open("wb"),
    )
    try:
        with fresh_vhost("loginwatch-demo") as vhost:
            config = OUT / "loginwatch.toml"
            config.write_text(CENTRAL.format(url=vhost.url(), port=port, out=OUT))
            result = loginwatch("setup", "--config", str(config))
            print(f"demo: {result.stdout.strip() or result.stderr.strip()}")
            if result.returncode != 0:
                return 1
            hosts = {}
            for name in ("web-01", "db-1", "bastion"):
                (OUT / "hosts" / name).mkdir(parents=True)
                hosts[name] = host_config(OUT / "hosts" / name, vhost.url(), host=name)
            with running_worker(config, OUT / "worker.log"):
                print(f"demo: worker running (log: demo-out/worker.log); hook: {HOOK}")
                if can_run_sshd():
                    print("demo: real ssh logins, one sshd per host in its own mount namespace")
                    play_ssh(hosts)
                else:
                    print("demo: not root or no sshd: the hook runs as pam_exec would run it")
                    play(hosts)
                settle(hosts, lambda: depth(vhost, topology.ALERTS_QUEUE), maildir)
            # The digest scheduler would send at the end of the day; close the window now.
            digest = loginwatch("digest", "--send-now", "--config", str(config))
            if digest.returncode != 0:
                print(f"demo: digest failed: {digest.stderr.strip()}")
                return 1
            print("demo: closed today's digest window early (loginwatch digest --send-now)")
            print("\ndemo: the worker's decisions (demo-out/worker.log):")
            for line in (OUT / "worker.log").read_text().splitlines():
                if " sent; " in line or "folded" in line or " digest " in line:
                    print("  " + line.split(": ", 1)[-1])
            report(maildir)
            status = loginwatch("status", "--config", str(config))
            print("\n" + status.stdout.rstrip())
    finally:
        smtp.terminate()
        smtp.wait(10)
    print("\ndemo: stopped the worker and the SMTP server, deleted the vhost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
