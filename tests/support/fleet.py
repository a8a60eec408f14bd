"""What the fleet tests (tests/fleet, ``make fleet``) share: the bundle, the host tests' wheels,
a host's install inside a chroot, and a login of that host's installed hook.

    bundle()                          dist/loginwatch-host-VERSION.tar.gz (make host-bundle)
    with_test_venv(debian)            /opt/lwtest in the chroot: pytest 8 and the host side
    install_from_bundle(debian, ...)  install-host.sh --bundle inside, as an operator runs it
    login(debian, config)             the installed hook as pam_exec runs it; flush(debian)
    mailing_worker(vhost, work)       this checkout's worker, mailing to an SMTP server of ours
    offline_netns()                   a network namespace with no route at all
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.version import VERSION
from tests.support.chroot import CACHE, REPO, Chroot
from tests.support.services import Vhost, missing
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import loginwatch, running_worker, write_config

DIST = REPO / "dist"
WHEELS = CACHE / "wheels" / "host-test"
# Inside a chroot: the checkout (read-only), the bundle's folder, the host tests' wheels.
SRC, DIST_IN, WHEELS_IN = "/src", "/dist", "/wheels"
HOOK = "/usr/local/sbin/loginwatch-hook"
PAM_ENV = (
    "PAM_TYPE=open_session PAM_SERVICE=sshd PAM_USER=alice PAM_RHOST=192.0.2.10 PAM_TTY=ssh "
    "SSH_CONNECTION='192.0.2.10 50022 198.51.100.5 22'"
)


def version() -> str:
    """This checkout's version (schemas/version.py), which its bundle and packages carry."""
    return VERSION


def bundle() -> Path:
    """This checkout's bundle; skips (fails under CI) when `make host-bundle` has not run."""
    path = DIST / f"loginwatch-host-{version()}.tar.gz"
    if not path.exists():
        missing(f"{path.relative_to(REPO)} (make host-bundle)")
    return path


def host_test_wheels(python: str) -> Path:
    """The wheels of the host lock, the host tests' lock and pip for CPython ``python`` on this
    machine's architecture, downloaded once into the cache (hashes checked)."""
    stamp = WHEELS / f".python-{python}"
    if not stamp.exists():
        arch = subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True)
        locks = [f"--lock={REPO / 'requirements' / name}" for name in ("host.txt", "host-test.txt")]
        subprocess.run(
            [sys.executable, str(REPO / "deploy" / "build" / "bundle.py"), "--wheels", str(WHEELS),
             *locks, f"--lock={REPO / 'requirements' / 'build.txt'}", f"--python={python}",
             f"--arch={arch.stdout.strip()}"],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        stamp.touch()
    return WHEELS


def binds(*extra: tuple[Path, str]) -> dict[Path | str, str]:
    """The checkout at /src, dist/ at /dist and the wheels at /wheels, plus ``extra``. The
    wheels' folder is made when no test has filled it yet (a bind needs its source: on a
    fresh machine the bundle's tests run before any test that needs the wheels)."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    DIST.mkdir(parents=True, exist_ok=True)
    return {REPO: SRC, DIST: DIST_IN, WHEELS: WHEELS_IN, **dict(extra)}


def with_test_venv(debian: Chroot) -> str:
    """/opt/lwtest in ``debian``: its python3 with the host tests' lock and loginwatch-host
    from the bundle (its ``loginwatch-hook`` beside the interpreter, where the tests look),
    made without ensurepip and without the index; returns its python."""
    host_test_wheels(debian.python)
    name = bundle().name
    debian.run(
        ["sh", "-euc", f"""
. {SRC}/deploy/lib/files.sh
python3 -m venv --without-pip /opt/lwtest
mkdir -p /tmp/bundle && tar -xzf {DIST_IN}/{name} -C /tmp/bundle
bundle=$(echo /tmp/bundle/loginwatch-host-*)
bundle_install /opt/lwtest/bin/python "$bundle"
# pip.txt names the pip for this Python; the tests' own wheels sit beside it.
bundle_pip /opt/lwtest/bin/python "$bundle" install -q --no-index --find-links {WHEELS_IN} \\
    --require-hashes -r {SRC}/requirements/host-test.txt
"""],
        binds=binds(),
    )  # fmt: skip
    return "/opt/lwtest/bin/python"


def install_from_bundle(
    debian: Chroot, config: Path, *args: str, netns: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``install-host.sh --bundle`` inside ``debian`` with ``config`` (read at /cfg/host.toml),
    run from the checkout's deploy/ as an operator with the bundle and a clone would."""
    return debian.run(
        ["sh", f"{SRC}/deploy/install-host.sh", "--bundle", f"{DIST_IN}/{bundle().name}",
         "--config", "/cfg/host.toml", *args],
        binds=binds((config.parent, "/cfg")), netns=netns, check=check,
    )  # fmt: skip


def login(
    debian: Chroot,
    config: str = "/etc/loginwatch/host.toml",
    *,
    user: str = "alice",
    netns: str | None = None,
    hook: str = HOOK,
) -> subprocess.CompletedProcess[str]:
    """The installed hook as pam_exec runs it at a login of ``user`` (PAM items only)."""
    env = PAM_ENV.replace("PAM_USER=alice", f"PAM_USER={user}")
    return debian.run(
        ["sh", "-c", f"env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin {env} {hook} --config {config}"],
        netns=netns,
    )  # fmt: skip


def flush(
    debian: Chroot, config: str = "/etc/loginwatch/host.toml", hook: str = HOOK
) -> subprocess.CompletedProcess[str]:
    """The installed hook's flush (as the timer runs it): what the spool kept, published."""
    return debian.run([hook, "--config", config, "flush"])


@contextmanager
def mailing_worker(vhost: Vhost, work: Path) -> Iterator[SmtpServer]:
    """A worker of this checkout on ``vhost`` (topology set up) that mails every login to
    ops@test.example through the SMTP server it yields; stopped when the block ends."""
    with SmtpServer() as smtp:
        config = write_config(work / "central.toml", vhost, smtp_port=smtp.port)
        setup = loginwatch("setup", "--config", str(config))
        assert setup.returncode == 0, setup.stdout + setup.stderr
        with running_worker(config, work / "worker.log"):
            yield smtp


@contextmanager
def offline_netns() -> Iterator[str]:
    """A network namespace with no route at all (not even loopback up); deleted afterwards."""
    if shutil.which("ip") is None:
        missing("iproute2 (apt-get install iproute2), for network namespaces")
    name = f"lwoff{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        routes = subprocess.run(
            ["ip", "netns", "exec", name, "ip", "route", "show", "table", "all"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        assert routes.stdout.strip() == "", routes.stdout
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def serve_ssh(debian: Chroot, log: Path, public_key: str, netns: str) -> subprocess.Popen[bytes]:
    """The chroot's own sshd on port 22 of network namespace ``netns``, root allowed in with
    ``public_key``: a host that Ansible, or a person, reaches over real SSH."""
    ssh_dir = debian.path("/root/.ssh")
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    debian.run(["ssh-keygen", "-A"])
    debian.path("/run/sshd").mkdir(exist_ok=True)
    return debian.popen(["/usr/sbin/sshd", "-D", "-e"], log=log, netns=netns)
