"""A private PostgreSQL instance for tests: password authentication only, on one address.

    with PgServer("10.231.7.1") as pg:           # or "127.0.0.1"
        pg.url                                    # postgresql://loginwatch@10.231.7.1:PORT/loginwatch
        pg.password_file(tmp / "store.password")  # a 0600 file with the password, for [store]
        pg.ca_file                                # off loopback: the CA of its certificate

Off loopback it speaks TLS only (``hostssl`` in ``pg_hba.conf``), with a certificate for its
address from a throwaway CA of its own, so a client reaches it as the transport rule wants
(``[store] ca_file``: ``sslmode=verify-full``), never by ``allow_plaintext``.

The machine's own PostgreSQL (which trusts local sockets) is never changed: this instance
has its own data directory under a temporary directory, its own port and socket directory,
``listen_addresses`` set to the one address given, and a ``pg_hba.conf`` that asks every
client for its SCRAM password. ``initdb`` refuses root, so the instance runs as
``postgres`` (``runuser``), which owns its directory. Its superuser is ``loginwatch``, with a
random password that only ever sits in 0600 files, never in argv. Stopped by the pid in
``postmaster.pid`` (fast shutdown, then SIGKILL), bounded, and its directory removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from schemas.transport import is_loopback
from tests.support.rabbit_node import ThrowawayCA
from tests.support.services import missing

USER = "loginwatch"
DATABASE = "loginwatch"
START_S = 60


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` that has ``initdb``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: p.split("/")[4])
    return Path(found[-1]).parent if found else None


def write_secret(path: Path, text: str, owner: int | None = None) -> Path:
    """``text`` into a new file at ``path``, mode 0600 from its creation (and ``owner``'s)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, owner, -1)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


class PgServer:
    """``postgres`` on ``address:self.port`` with SCRAM password authentication only."""

    def __init__(self, address: str = "127.0.0.1", *, tls: bool | None = None) -> None:
        bin_dir = binaries()
        if bin_dir is None or os.geteuid() != 0:
            missing("root and PostgreSQL's server binaries (apt-get install postgresql)")
        assert bin_dir is not None
        self.bin = bin_dir
        self.address = address
        self.password = secrets.token_urlsafe(18)
        try:
            self._owner = pwd.getpwnam("postgres")
        except KeyError:
            missing("a postgres user to run the private instance as")
        self.dir = Path(tempfile.mkdtemp(prefix="lw-pg-"))
        os.chown(self.dir, self._owner.pw_uid, self._owner.pw_gid)
        self.data = self.dir / "data"
        self.port = _free_port(address)
        self.tls = not is_loopback(address) if tls is None else tls
        self.ca_file: str | None = None

    @property
    def url(self) -> str:
        """The loginwatch database's URL: no password in it (that is ``password_file``'s)."""
        return f"postgresql://{USER}@{self.address}:{self.port}/{DATABASE}"

    def password_file(self, path: Path) -> Path:
        """A 0600 file with the password, owned by the caller: ``[store] password_file``."""
        return write_secret(path, self.password + "\n")

    def connect(self, database: str = DATABASE) -> psycopg.Connection[tuple[object, ...]]:
        tls = f"?sslmode=verify-full&sslrootcert={self.ca_file}" if self.ca_file else ""
        return psycopg.connect(
            f"postgresql://{USER}@{self.address}:{self.port}/{database}{tls}",
            password=self.password, autocommit=True, connect_timeout=5,
        )  # fmt: skip

    def _certificate(self) -> str:
        """A CA, and a certificate and key for this address (the key postgres's, 0600);
        returns the postgresql.conf lines that use them."""
        tls = self.dir / "tls"
        tls.mkdir(mode=0o755)
        ca = ThrowawayCA(tls)
        cert, key = ca.issue(
            "server", f"subjectAltName=IP:{self.address}\nextendedKeyUsage=serverAuth\n"
        )
        os.chown(key, self._owner.pw_uid, self._owner.pw_gid)
        key.chmod(0o600)
        self.ca_file = str(ca.cert)
        return f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"

    def _as_postgres(self, *argv: str, timeout: float = START_S) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
            timeout=timeout, check=False, cwd=self.dir, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name}: {done.stderr.strip()[-1500:]}")

    def _init(self) -> None:
        pwfile = write_secret(self.dir / "initdb.password", self.password, self._owner.pw_uid)
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-E", "UTF8",
            "--no-locale", "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        sockets = self.dir / "sockets"
        sockets.mkdir(mode=0o700)
        os.chown(sockets, self._owner.pw_uid, self._owner.pw_gid)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '{self.address}'\nport = {self.port}\n"
                f"unix_socket_directories = '{sockets}'\npassword_encryption = scram-sha-256\n"
                "max_connections = 60\n" + (self._certificate() if self.tls else "")
            )
        tcp = "hostssl" if self.tls else "host"  # hostssl: TCP without TLS is refused
        (self.data / "pg_hba.conf").write_text(
            "# loginwatch tests: a password for everyone, over the socket and TCP alike\n"
            f"local all all scram-sha-256\n{tcp} all all all scram-sha-256\n"
        )

    def __enter__(self) -> PgServer:
        try:
            self._init()
            self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                "-w", "-t", str(START_S), "start", timeout=START_S + 10,
            )  # fmt: skip
            with self.connect("postgres") as admin:
                admin.execute(f"CREATE DATABASE {DATABASE}")
        except BaseException:
            self.close()
            raise
        return self

    def pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pid_file.read_text().split()[0])
        return None

    def log_tail(self) -> str:
        log = self.dir / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def close(self) -> None:
        """Fast shutdown by pid (SIGINT), SIGKILL after 30 s; the directory removed."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            if not _gone(pid, 30):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _gone(pid, 10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` ended (or is a zombie nobody reaped yet) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
