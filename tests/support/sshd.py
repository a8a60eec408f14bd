"""A real sshd with real PAM on a loopback port, inside a private mount namespace.

The machine's own /etc/pam.d, /etc/passwd and sshd config are never touched:
``unshare -m`` gives sshd a mount namespace of its own, in which copies of
/etc/pam.d (plus our PAM stack), /etc/passwd, /etc/shadow, /etc/group (plus a
test user with a known password) and a private /run are bind-mounted over the
real ones. Everything is stopped by pid when the context ends.

``PamNamespace`` alone runs any command (pamtester, the hook) in such a
namespace; ``Sshd`` runs sshd in one and logs in with the real ssh client.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from schemas.event import LoginEvent
from tests.support.hookrun import TapQueue
from tests.support.services import missing

TEST_USER = "lwtest"
TEST_UID = 4242
TEST_PASSWORD = "correct horse battery"

# A minimal sshd stack: password auth by pam_unix, then our session hook.
# (The distro's stack adds pam_loginuid & co., which fail inside containers.)
AUTH_STACK = """\
auth     [success=1 default=ignore]  pam_unix.so nullok
auth     requisite                   pam_deny.so
auth     required                    pam_permit.so
"""
ACCOUNT_STACK = "account  required  pam_unix.so\n"
SESSION_STACK = "session  required  pam_unix.so\n"


def require_root_namespaces() -> None:
    """Skip locally / fail under CI unless sshd, pamtester and unshare can run."""
    if os.geteuid() != 0:
        missing("root (for unshare -m and bind mounts)")
    for tool in ("/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/unshare"):
        if not os.path.exists(tool):
            missing(f"{tool} (apt-get install openssh-server openssh-client util-linux)")


def hook_line(hook: str, config: Path, *args: str, kind: str = "session") -> str:
    words = [kind, "optional", "pam_exec.so", "quiet", hook, "--config", str(config), *args]
    return "  ".join(words) + "\n"


@dataclass
class PamNamespace:
    """Copies of /etc/pam.d and the user databases, to bind-mount in a namespace."""

    root: Path

    def __post_init__(self) -> None:
        self.pam_dir = self.root / "pam.d"
        self.run_dir = self.root / "run"
        self.home = self.root / "home" / TEST_USER
        shutil.copytree("/etc/pam.d", self.pam_dir, symlinks=True)
        self.run_dir.mkdir(mode=0o755)
        self.home.mkdir(parents=True)
        os.chown(self.home, TEST_UID, TEST_UID)
        self._user_databases()

    def _user_databases(self) -> None:
        digest = subprocess.run(
            ["openssl", "passwd", "-6", "-salt", "loginwatch", TEST_PASSWORD],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for name, line in (
            ("passwd", f"{TEST_USER}:x:{TEST_UID}:{TEST_UID}::{self.home}:/bin/sh"),
            ("group", f"{TEST_USER}:x:{TEST_UID}:"),
            ("shadow", f"{TEST_USER}:{digest}:20000:0:99999:7:::"),
        ):
            text = Path("/etc", name).read_text()
            (self.root / name).write_text(text.rstrip("\n") + "\n" + line + "\n")
        os.chmod(self.root / "shadow", 0o600)

    def set_service(self, name: str, stack: str) -> None:
        (self.pam_dir / name).write_text(stack)

    def script(self, command: str) -> str:
        """A shell script that mounts our copies, then runs ``command``."""
        mounts = [
            f"mount --bind {self.pam_dir} /etc/pam.d",
            f"mount --bind {self.run_dir} /run",
            *(f"mount --bind {self.root / n} /etc/{n}" for n in ("passwd", "group", "shadow")),
            "mkdir -p /run/sshd /run/loginwatch",
        ]
        return "set -e\n" + "\n".join(mounts) + "\n" + command + "\n"

    def popen(self, command: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            ["unshare", "-m", "--propagation", "private", "sh", "-c", self.script(command)],
            **kwargs,
        )

    def run(self, command: str, stdin: str = "", timeout: float = 30) -> tuple[int, str]:
        proc = self.popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = proc.communicate(stdin.encode(), timeout=timeout)
        return proc.returncode, out.decode(errors="replace")

    def pamtester(self, service: str, user: str, password: str) -> tuple[int, str]:
        """``pamtester SERVICE USER authenticate`` with ``password`` typed in."""
        if shutil.which("pamtester") is None:
            missing("pamtester (apt-get install pamtester)")
        return self.run(f"pamtester -v {service} {user} authenticate", stdin=password + "\n")


class Sshd:
    """sshd on 127.0.0.1:PORT in its own mount namespace, with our PAM stack."""

    def __init__(self, pam_stack: str, *, password_auth: bool = False, setup: str = "") -> None:
        """``setup``: shell commands to run in sshd's namespace before it starts (a
        mount of its own, say); their output goes to the log (``tail``)."""
        require_root_namespaces()
        self.setup = setup
        # sshd reads authorized_keys as the user: the path must be traversable,
        # which pytest's private tmp_path is not.
        root = Path(tempfile.mkdtemp(prefix="loginwatch-sshd-"))
        os.chmod(root, 0o755)
        self.root = root
        self.ns = PamNamespace(root)
        self.ns.set_service("sshd", pam_stack)
        self.port = _free_port()
        self.client_key = root / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)],
            check=True,
        )
        host_key = root / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
        )
        keys = root / "authorized_keys"
        keys.write_text(self.client_key.with_suffix(".pub").read_text())
        os.chmod(keys, 0o644)
        self.config = root / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {root}/sshd.pid",
                    f"AuthorizedKeysFile {keys}",
                    "UsePAM yes",
                    "UseDNS no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    f"PasswordAuthentication {'yes' if password_auth else 'no'}",
                    "KbdInteractiveAuthentication no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sshd:
        with open(self.log, "wb") as log:
            self.proc = self.ns.popen(
                f"{self.setup}\nexec /usr/sbin/sshd -D -e -f {self.config}",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def client_fingerprint(self) -> str:
        """The SHA256 fingerprint of the client's key, as sshd logs it and the hook ships it."""
        listed = subprocess.run(["ssh-keygen", "-lf", f"{self.client_key}.pub"],
                                capture_output=True, text=True, check=True)  # fmt: skip
        return listed.stdout.split()[1]

    def ssh_args(self, user: str, *options: str) -> list[str]:
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            *options,
            f"{user}@127.0.0.1",
        ]

    def ssh(
        self, user: str, command: str = "true", timeout: float = 30, tty: bool = False
    ) -> float:
        """Log in with the key and run ``command`` (``tty``: on a terminal, which sshd records
        in wtmp); returns the wall time in seconds."""
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*self.ssh_args(user, "-o", "BatchMode=yes", *(["-tt"] if tty else [])), command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, err = proc.communicate(timeout=timeout)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"ssh failed ({proc.returncode}): {err.decode()}{self.tail()}")
        return elapsed

    def tail(self) -> str:
        return "\nsshd log:\n" + self.log.read_text()[-3000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# A library that leaves a mark when ld.so loads it: the process's uid and
# program, in a file of its own. Preloaded from ~/.pam_environment, a mark
# with uid 0 means the user's code ran as root.
PRELOAD_SOURCE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void mark(void) {
    char exe[512] = "?", path[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    snprintf(path, sizeof path, "%s/uid%d.pid%d", MARKS, (int)getuid(), (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        write(fd, exe, strlen(exe));
        close(fd);
    }
}
"""


@dataclass
class Preload:
    """A compiled marker library and the directory its marks land in."""

    library: Path
    marks: Path

    @classmethod
    def build(cls, directory: Path) -> Preload:
        """Compile it into ``directory`` (which every user must be able to traverse)."""
        if shutil.which("gcc") is None:
            missing("gcc (apt-get install gcc)")
        marks = directory / "marks"
        marks.mkdir()
        marks.chmod(0o1777)
        source = directory / "mark.c"
        source.write_text(PRELOAD_SOURCE)
        library = directory / "mark.so"
        subprocess.run(
            ["gcc", "-shared", "-fPIC", f'-DMARKS="{marks}"', "-o", str(library), str(source)],
            check=True,
        )
        library.chmod(0o755)
        return cls(library, marks)

    def by_uid(self) -> dict[int, list[str]]:
        """uid → the programs that loaded the library under it."""
        found: dict[int, list[str]] = {}
        for mark in sorted(self.marks.iterdir()):
            uid = int(mark.name.split(".")[0].removeprefix("uid"))
            found.setdefault(uid, []).append(mark.read_text())
        return found


def write_pam_environment(home: Path, text: str) -> None:
    """What the test user writes into ~/.pam_environment (owned by them)."""
    path = home / ".pam_environment"
    path.write_text(text)
    os.chown(path, TEST_UID, TEST_UID)


def events_of(tap: TapQueue, host: str, count: int, timeout: float = 15) -> list[LoginEvent]:
    """Up to ``count`` events of ``host`` within ``timeout``, others skipped.

    The broker vhost is shared by the session, and a detached publisher of an
    earlier test may still deliver late: a test counts only its own host's.
    """
    got: list[LoginEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += [e for _, e in tap.take(1, timeout=deadline - time.monotonic()) if e.host == host]
    return got
