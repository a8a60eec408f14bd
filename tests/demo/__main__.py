"""``make demo``: loginwatch end to end on this machine, then everything stopped again.

What it starts (and stops, by pid, whatever happens): a private RabbitMQ vhost,
``loginwatch setup``, one ``loginwatch worker``, a real SMTP server (aiosmtpd)
that keeps every mail in a Maildir under ``demo-out/``, and a local webhook receiver
(``[receiver.siem]``, Standard Webhooks: it checks each signature and body) that gets
every root login and prints what it received. Then it plays logins
from three hosts, each with its own ``[host] name`` and spool: as root, real ssh
logins into one real sshd per host (tests/support/sshd.py: a private mount namespace
with its own PAM stack calling the real ``loginwatch-hook``); otherwise the
hook run with the environment pam_exec would give it. Ordinary logins, a root
login, a first-seen source and a burst of wrong passwords. It prints what each
inbox received and where the HTML parts lie. Its second part (tests/demo/actions.py) shows
acting on an alert: a "was this you?" question, a "No" answered as a browser sends it, the
escalation in the security inbox, a silence made from a link by a signed-in operator.

Run: ``make demo`` (or ``.venv/bin/python -m tests.demo`` once RabbitMQ runs).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
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

from tests.demo import actions
from tests.support.hookrun import ED25519_BLOB, HOOK, PAM_ENV, run_hook, spooled
from tests.support.hookrun import write_config as host_config
from tests.support.receiver_server import ReceiverServer
from tests.support.services import fresh_vhost
from tests.support.smtp_server import free_port
from tests.support.sshd import TEST_USER, Sshd, hook_line
from tests.support.worker_helpers import ROOT, alerts_depth, loginwatch, running_worker

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

# ...and reads the sessions that ended there (their lengths) in its digest.
[[route]]
to = ["web-team@demo.example"]
hosts = ["web-*"]
kinds = ["logout"]
mode = "digest"

# Security also hears at once of every sudo or su that became root, with the login its
# session began with (the others reach its digest).
[[route]]
to = ["security@demo.example"]
kinds = ["sudo", "su"]
escalation_only = true

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

# The security team's SIEM gets every root login as a signed webhook (docs/channels.md).
[[route]]
to = ["receiver:siem"]
users = ["root"]
kinds = ["login"]
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
    sudo = pam_env("root", "", 0, PAM_SERVICE="sudo", PAM_RUSER="alice", PAM_TTY="/dev/pts/0",
                   SSH_CONNECTION="", SSH_AUTH_INFO_0="")  # fmt: skip
    del sudo["PAM_RHOST"]
    print("  web-01   alice runs sudo: root, tied to her login where the session links it")
    run_hook(hosts["web-01"], sudo)
    failure = pam_env("admin", "203.0.113.66", 0, PAM_TYPE="auth", SSH_AUTH_INFO_0="")
    print("  bastion  8 failed passwords for 'admin' from 203.0.113.66")
    for n in range(8):
        failure["SSH_CONNECTION"] = f"203.0.113.66 {52000 + n} 198.51.100.5 22"
        run_hook(hosts["bastion"], failure, ("--outcome", "failure"))
    print("  bastion  then 'admin' gets in from 203.0.113.66: after 8 failed passwords")
    run_hook(hosts["bastion"], pam_env("admin", "203.0.113.66", 52100,
                                       SSH_AUTH_INFO_0="password\n"))  # fmt: skip


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


def wtmp_mounts(directory: Path) -> str:
    """web-01's sshd writes wtmp and lastlog of its namespace: files of the demo's own, which
    its config's flush reads (``[host] wtmp``), never the machine's."""
    for name in ("wtmp", "lastlog"):
        (directory / name).write_bytes(b"")
    directory.chmod(0o755)
    return (
        f"mount --bind {directory / 'wtmp'} /var/log/wtmp\n"
        f"mount --bind {directory / 'lastlog'} /var/log/lastlog\ntouch /run/utmp"
    )


def sudo_stack(sshd: Sshd, config: Path) -> str:
    """sudo in sshd's namespace: the test user may run anything without a password, and
    sudo's stack runs the hook at open_session, as install-host.sh --services sudo places it."""
    sudoers = sshd.root / "sudoers"
    sudoers.write_text(f"Defaults !syslog, !lecture\n{TEST_USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    hook = hook_line(HOOK, config).replace("pam_exec.so", "pam_exec.so type=open_session")
    sshd.ns.set_service("sudo", "account  required  pam_permit.so\n" + hook)
    return f"mount --bind {sudoers} /etc/sudoers"


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
            sshd = Sshd(pam, password_auth=name == "bastion")
            if name == "web-01":
                sshd.setup = wtmp_mounts(config.parent)
                if os.path.exists("/usr/bin/sudo"):
                    sshd.setup += "\n" + sudo_stack(sshd, config)
            sshds[name] = stack.enter_context(sshd)
        steps = [
            ("web-01", TEST_USER, "127.0.0.1", f"{TEST_USER} logs in to web-01 (new source)"),
            ("web-01", TEST_USER, "127.0.0.1", f"{TEST_USER} again, same source"),
            ("db-1", "root", "127.0.0.1", "root logs in to db-1"),
            ("bastion", TEST_USER, "127.0.0.5", f"{TEST_USER} on the bastion from a new address"),
        ]
        for host, user, source, what in steps:
            print(f"  {host:<8} ssh {user}@{host} from {source}: {what}")
            ssh(sshds[host], user, source)
        if sshds["web-01"].setup:
            print(f"  web-01   ssh {TEST_USER}@web-01 'sudo -n true': an escalation, tied to the"
                  " login by its audit session (else its sshd process)")  # fmt: skip
            sshds["web-01"].ssh(TEST_USER, "sudo -n true")
        print(f"  web-01   ssh -t {TEST_USER}@web-01 'sleep 1.2', then the flush timer's run:"
              " its logout from wtmp, linked to its login, the session's length in the"
              " digest")  # fmt: skip
        flush = [HOOK, "--config", str(hosts["web-01"]), "flush"]
        # The first flush starts reading wtmp where it ends (the history before the hook
        # is no news); the session's end comes with the next.
        subprocess.run(flush, capture_output=True, timeout=60, check=False)
        sshds["web-01"].ssh(TEST_USER, "sleep 1.2", tty=True)
        subprocess.run(flush, capture_output=True, timeout=60, check=False)
        print("  bastion  8 wrong passwords for 'admin' from 127.0.0.66")
        for _ in range(8):
            wrong_password(sshds["bastion"], "admin", askpass)
        print(f"  bastion  then {TEST_USER} gets in from 127.0.0.66: after 8 failed passwords")
        ssh(sshds["bastion"], TEST_USER, "127.0.0.66")


def settle(hosts: dict[str, Path], vhost_alerts: Callable[[], int], maildir: Path) -> None:
    """Wait until the spools are empty, the alerts queue drained and no mail came for 2 s."""
    deadline = time.monotonic() + 60
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = sum(1 for _ in (maildir / "new").iterdir()) if (maildir / "new").exists() else 0
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        busy = any(spooled(c.parent) for c in hosts.values()) or vhost_alerts() > 0
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


def report_webhook(siem: ReceiverServer) -> None:
    """What the webhook receiver got: its headers, the signature check, the body."""
    print(f"\nreceiver:siem (a webhook on 127.0.0.1:{siem.port}): {len(siem.posts)} post(s)")
    for post in siem.posts:
        body = post.json
        print(f"  POST {post.path}  webhook-id: {post.headers['webhook-id']}"
              f"  webhook-timestamp: {post.headers['webhook-timestamp']}")  # fmt: skip
        print(
            f"    webhook-signature: {post.headers['webhook-signature'].count('v1,')}"
            " signature(s), each verified with its key by the standardwebhooks library"
        )
        print(f"    {body['type']}: {body['title']}")
        data = body["data"]
        if "event" in data:
            shown = {k: data["event"][k] for k in ("user", "host", "client_ip", "fingerprint")}
            print(f"    data.event: {json.dumps(shown)}")
            print(f"    data.decision: {json.dumps(data['decision']['reason'])}")
        else:
            print(f"    data: {data['total']} events in window {data['window']['key']}")
    problems = siem.problems or ["none: every signature and body checked out"]
    print(f"  problems: {'; '.join(problems)}")


def main() -> int:
    with ReceiverServer("webhook") as siem:
        return _main(siem)


def _main(siem: ReceiverServer) -> int:
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
            config.write_text(CENTRAL.format(url=vhost.url(), port=port, out=OUT)
                              + "\n" + siem.section("siem"))  # fmt: skip
            result = loginwatch("setup", "--config", str(config))
            print(f"demo: {result.stdout.strip() or result.stderr.strip()}")
            if result.returncode != 0:
                return 1
            hosts = {}
            for name in ("web-01", "db-1", "bastion"):
                (OUT / "hosts" / name).mkdir(parents=True)
                # Only web-01's flush reads a wtmp (its sshd's, demo-out/hosts/web-01/wtmp).
                records = OUT / "hosts" / name / "wtmp" if name == "web-01" else ""
                keys = (f'wtmp = "{records}"', 'wtmpdb = ""')
                hosts[name] = host_config(OUT / "hosts" / name, vhost.url(), host=name,
                                          host_keys=keys)  # fmt: skip
            with running_worker(config, OUT / "worker.log"):
                print(f"demo: worker running (log: demo-out/worker.log); hook: {HOOK}")
                if can_run_sshd():
                    print("demo: real ssh logins, one sshd per host in its own mount namespace")
                    play_ssh(hosts)
                else:
                    print("demo: not root or no sshd: the hook runs as pam_exec would run it")
                    play(hosts)
                settle(hosts, lambda: alerts_depth(vhost), maildir)
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
            report_webhook(siem)
            status = loginwatch("status", "--config", str(config))
            print("\n" + status.stdout.rstrip())
    finally:
        smtp.terminate()
        smtp.wait(10)
    print("\ndemo: stopped the worker, the SMTP server and the webhook receiver, deleted the vhost")
    print("\n=== acting on an alert: was this you?, a No, its escalation, a silence from a link")
    acted = actions.run(OUT / "actions")
    print("\ndemo: stopped the worker, loginwatch web, the digest scheduler and the SMTP server")
    return acted


if __name__ == "__main__":
    raise SystemExit(main())
