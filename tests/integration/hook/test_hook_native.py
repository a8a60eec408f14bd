"""The C front-end (producer/native) against the Python foreground: the same records from the
same raw environments, the handover when its settings cache is stale, and what a user's
``LD_PRELOAD`` can do to each.

The environments are made by a C launcher, as pam_exec makes them: a name may come twice
(the user's copy first), an entry may have no ``=``, values may be any bytes but NUL.
The same cases run through the ASan + UBSan build of the front-end (clang).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from producer import capture, session_link
from tests.support.hookrun import (
    HOOK,
    PAM_ENV,
    run_hook,
    spooled,
    unreachable_url,
    warm_settings,
    write_config,
)
from tests.support.native import SOURCE, built, native_hook
from tests.support.services import missing
from tests.support.sshd import Preload
from tests.support.syslog_capture import SyslogNamespace

pytestmark = pytest.mark.integration

LAUNCHER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* envexec FILE PROGRAM ARGS...: PROGRAM with the NUL-separated entries of FILE, in order. */
int main(int argc, char **argv) {
    static char block[4 << 20];
    static char *env[100000];
    FILE *f = fopen(argv[1], "rb");
    size_t len = fread(block, 1, sizeof block - 1, f), n = 0;
    for (size_t at = 0; at < len; at += strlen(block + at) + 1) env[n++] = block + at;
    (void)argc;
    execve(argv[2], argv + 2, env);
    return 127;
}
"""

PAM_EXEC_TAIL = [b"PAM_SERVICE=sshd", b"PAM_USER=alice", b"PAM_TTY=ssh", b"PAM_RHOST=192.0.2.10"]
LOGIN = [
    b"SSH_CONNECTION=192.0.2.10 50022 198.51.100.5 22",
    b"SSH_AUTH_INFO_0=publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF00DZXF\n",
    *PAM_EXEC_TAIL,
    b"PAM_TYPE=open_session",
]
CASES: dict[str, tuple[list[bytes], tuple[str, ...]]] = {
    "key login": (LOGIN, ()),
    "failed password": ([*PAM_EXEC_TAIL, b"PAM_TYPE=auth"], ("--outcome", "failure")),
    "users copies first": (
        [
            b"PAM_USER=root",
            b"PAM_TYPE=close_session",
            b"LD_PRELOAD=/nonexistent/x.so",
            b"SSH_CONNECTION=203.0.113.66 4444 203.0.113.1 22",
            *LOGIN,
        ],
        (),
    ),
    "no pam_exec block": ([b"PAM_USER=a", b"SSH_CONNECTION=x", b"PAM_USER=b"], ()),
    "hostile and long": (
        [
            b"PAM_USER=\xff\xfe\r\nBcc: x@y" + b"A" * 5000,
            b"PAM_RHOST={{ 7*7 }}<script>",
            b"SSH_AUTH_INFO_0=" + b"k" * 20000,
            b"",
            b"PAM_",
            b"PAM_NOEQ",
            b"=x",
            b"PAM_SERVICE=sshd",
            b"PAM_TYPE=open_session",
        ],
        ("--outcome", "success"),
    ),
    "15,000 other variables": ([b"X%05d=%s" % (n, b"v" * 100) for n in range(15000)] + LOGIN, ()),
}


@pytest.fixture(scope="module")
def envexec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        missing("gcc (apt-get install gcc)")
    work = tmp_path_factory.mktemp("envexec")
    (work / "envexec.c").write_text(LAUNCHER)
    subprocess.run(["gcc", "-O2", "-o", str(work / "envexec"), str(work / "envexec.c")], check=True)
    return work / "envexec"


@pytest.fixture(scope="module")
def sanitized() -> str:
    """The ASan + UBSan build, installed beside the venv's python as the real one is."""
    if shutil.which("clang") is None:
        missing("clang (apt-get install clang)")
    done = subprocess.run(
        ["make", "-s", "-C", str(SOURCE), "out/sanitized/loginwatch-hook"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    target = Path(sys.executable).with_name("loginwatch-hook-asan")
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copy(SOURCE / "out" / "sanitized" / "loginwatch-hook", tmp)
    os.replace(tmp, target)
    return str(target)


def run(
    envexec: Path,
    hook: str,
    config: Path,
    env: list[bytes],
    *,
    args: tuple[str, ...] = (),
    extra: tuple[bytes, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    block = config.with_suffix(".env")
    block.write_bytes(b"".join(entry + b"\0" for entry in [*extra, *env]))
    return subprocess.run(
        [str(envexec), str(block), hook, "--config", str(config), *args],
        capture_output=True,
        timeout=30,
        check=False,
    )


def record_of(directory: Path) -> tuple[dict[str, bytes], bool, list[str]]:
    """The spool's one record: its items without id and time, urgency and file name suffix."""
    [data] = spooled(directory)
    items = capture.parse(data)
    del items["LW_ID"], items["LW_TIME"]
    header = capture.header(data)
    assert header is not None
    names = [
        n.split("-", 1)[1].split(".", 1)[1]
        for n in os.listdir(directory / "spool")
        if n.endswith(".cap")
    ]
    return items, header.urgent, names


@pytest.mark.parametrize("case", CASES)
def test_both_foregrounds_write_the_same_record(envexec: Path, tmp_path: Path, case: str) -> None:
    env, args = CASES[case]
    records = []
    for name, hook in (("python", HOOK), ("native", native_hook())):
        (tmp_path / name).mkdir()
        config = write_config(tmp_path / name, unreachable_url())
        warm_settings(config)
        done = run(envexec, hook, config, env, args=args)
        assert done.returncode == 0, done.stderr
        if name == "native":  # it took the login itself: no handover said (nor ld.so's word)
            assert done.stderr == b"", done.stderr
        records.append(record_of(tmp_path / name))
    assert records[0] == records[1]
    assert records[1][0].get("PAM_USER") != b"root", "pam_exec's copy, never the user's"


def test_both_foregrounds_link_the_root_sshd_above_them(envexec: Path, tmp_path: Path) -> None:
    """Run under a root process named ``sshd-session`` (a copy of the shell, where OpenSSH 9.8
    puts a session's monitor), each foreground walks up to it: the same record, and each names
    its own shell's pid and start time, as /proc gave them (producer.session_link)."""
    shell = tmp_path / "sshd-session"
    shutil.copy("/bin/sh", shell)
    records = []
    for name, hook in (("python", HOOK), ("native", native_hook())):
        (tmp_path / name).mkdir()
        config = write_config(tmp_path / name, unreachable_url())
        warm_settings(config)
        block = config.with_suffix(".env")
        block.write_bytes(b"".join(entry + b"\0" for entry in LOGIN))
        stat = tmp_path / name / "stat"
        script = 'cat /proc/$$/stat > "$1"; shift; "$@"; exit $?'  # no exec: the shell stays
        done = subprocess.run(
            [str(shell), "-c", script, "sh", str(stat), str(envexec), str(block), hook,
             "--config", str(config)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        items, urgent, names = record_of(tmp_path / name)
        fields = stat.read_bytes().rsplit(b")", 1)[1].split()
        assert items.pop("LW_SSHD") == b"%s %s" % (stat.read_bytes().split()[0], fields[19])
        records.append((items, urgent, names))
    assert records[0] == records[1]


PROC_PARSE = r"""
#include <stdio.h>
#include "lwcore.h"
/* procparse FILE...: for each, what the C front-end makes of it as one read of a /proc file. */
static void hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
}
int main(int argc, char **argv) {
    static char data[LW_PROC_READ];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        size_t n = fread(data, 1, sizeof data, f), len = n;
        fclose(f);
        struct lw_proc p;
        if (lw_proc_stat(data, n, &p) == 0) {
            hex(p.name, p.name_len);
            printf(" %s %s %d %d", p.parent, p.start, lw_sshd_name(p.name, p.name_len),
                   lw_at_most_one(p.parent));
        } else printf("None");
        printf(" %d ", lw_status_root(data, n));
        const char *stripped = lw_strip(data, &len);
        hex(stripped, len);
        printf("\n");
    }
    return 0;
}
"""


def hostile_proc_files() -> list[bytes]:
    """This process's stat and status, and mutations of them: names holding ")" and spaces,
    signs, "_", numbers past 64 bits, missing fields, other line ends, every whitespace byte
    the Python side splits on."""
    stat = Path("/proc/self/stat").read_bytes()
    status = Path("/proc/self/status").read_bytes()
    made = [
        stat, status, b"", b"4294967295\n", b" \t\x0b\x0c\r\n42\n\x1c", b"Uid:0 0 0\n",
        b"Uid:\t0\n", b"Name:\tx\rUid:\t0\t0\r\nUid:\t1\t1\n", b"uid:\t0\t0\n",
        b"1 (sshd-session) S 1 " + b"0 " * 17 + b"77",
        b"1 (sshd) S 1 " + b"0 " * 17, b"1 (sshd)S 9 " + b"0 " * 17 + b"5",
        b"9 (x) S 7 (sshd) S -4 " + b"+1 " * 17 + b"+0042",
        b"9 (n) S 1 " + b"1 " * 17 + b"9" * 25, b"9 (n) S 1_0 " + b"1 " * 17 + b"1",
        b"9 (n) S -0 " + b"1 " * 17 + b"-0_0", b"9 (n) S 1__0 " + b"1 " * 17 + b"1",
        b"9 (n) S _1 " + b"1 " * 17 + b"1_", b"9 (n) S +_1 " + b"1 " * 17 + b"007",
        b"9 (n) S +0001 " + b"1 " * 17 + b"-00_90", b"9 (n) S - " + b"1 " * 17 + b"+",
        b"9 )n( S 1 " + b"1 " * 18, b"(((", b")", b"(a)",
    ]  # fmt: skip
    rng = random.Random(22)
    for _ in range(400):
        data = bytearray(rng.choice((stat, status, made[10], made[12])))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data) + 1)
            data[at : at + rng.randint(0, 3)] = bytes(
                rng.choice(b" \t\n\r\x0b\x0c()-+_0Uid:sh") for _ in range(rng.randint(0, 3))
            )
        made.append(bytes(data[: session_link.MAX_DEPTH * 128]))
    return made


def python_reads(data: bytes) -> str:
    """What producer.session_link makes of ``data``, in procparse's words."""
    real = session_link._read
    session_link._read = lambda path: data
    try:
        found, root = session_link.process(2), session_link.is_root(2)
    finally:
        session_link._read = real
    if found is None:
        said = "None"
    else:
        name, parent, start = found
        sshd = int(name in session_link.SSHD_NAMES)
        said = f"{name.hex()} {parent} {start} {sshd} {int(parent <= 1)}"
    return f"{said} {int(root)} {data.strip().hex()}"


def test_the_proc_parsers_read_what_session_link_reads(tmp_path: Path) -> None:
    """lwcore's /proc parsers (lw_proc_stat, lw_status_root, lw_strip) and producer.session_link's
    on the same hostile bytes: the same name, parent, start time, root or not, stripped value."""
    if shutil.which("gcc") is None:
        missing("gcc (apt-get install gcc)")
    (tmp_path / "procparse.c").write_text(PROC_PARSE)
    binary = tmp_path / "procparse"
    subprocess.run(["gcc", "-O1", f"-I{SOURCE}", "-o", str(binary), str(tmp_path / "procparse.c"),
                    str(SOURCE / "lwcore.c")], check=True)  # fmt: skip
    files = []
    for n, data in enumerate(hostile_proc_files()):
        files.append(tmp_path / f"in{n}")
        files[-1].write_bytes(data)
    said = subprocess.run([str(binary), *map(str, files)], capture_output=True, check=True).stdout
    c_side = said.decode().splitlines()
    assert len(c_side) == len(files)
    differ = [
        (path.read_bytes(), c, python_reads(path.read_bytes()))
        for path, c in zip(files, c_side, strict=True)
        if c != python_reads(path.read_bytes())
    ]
    assert differ == []
    assert sum(line.startswith("None") for line in c_side) < len(c_side) - 10, "some parse"


def test_a_stale_settings_cache_hands_the_login_to_python(envexec: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, unreachable_url())
    warm_settings(config)
    config.write_text(config.read_text() + "# edited\n")  # a new size and mtime: stale
    first = run(envexec, native_hook(), config, LOGIN)
    assert first.returncode == 0
    assert b"settings cache stale: the Python foreground takes this login" in first.stderr
    second = run(envexec, native_hook(), config, LOGIN)  # Python wrote the cache again
    assert (second.returncode, second.stderr) == (0, b"")
    assert len(spooled(tmp_path)) == 2


def test_version_names_the_foreground() -> None:
    native = subprocess.run(
        [native_hook(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    python = subprocess.run([HOOK, "--version"], capture_output=True, text=True, check=True).stdout
    assert "(foreground: native C, " in native and native.startswith("loginwatch-hook 0.")
    assert "(foreground: Python 3." in python


def test_a_users_ld_preload_never_runs_in_the_front_end_nor_what_it_starts(
    envexec: Path, tmp_path: Path
) -> None:
    """The front-end is static (no ld.so, so no LD_PRELOAD), and what it execs — the
    publisher, the Python foreground it hands a login to — gets no LD_* variable. The
    Python foreground, misplaced after pam_env, loads the user's library as root."""
    (tmp_path / "preload").mkdir()
    preload = Preload.build(tmp_path / "preload")  # every run here is root's
    headers = subprocess.run(
        ["readelf", "-l", str(built())], capture_output=True, text=True, check=True
    ).stdout
    assert "INTERP" not in headers and "DYN" in headers, "static-pie: no interpreter"
    evil = (b"LD_PRELOAD=" + bytes(preload.library),)
    config = write_config(tmp_path, unreachable_url())
    warm_settings(config)
    assert run(envexec, native_hook(), config, LOGIN, extra=evil).stderr == b""
    config.write_text(config.read_text() + "# stale: the Python foreground takes the next\n")
    assert (
        b"Python foreground takes" in run(envexec, native_hook(), config, LOGIN, extra=evil).stderr
    )
    assert len(spooled(tmp_path)) == 2
    assert preload.by_uid() == {}, "nothing ran the user's library"
    run(envexec, HOOK, config, LOGIN, extra=evil)
    assert 0 in preload.by_uid(), "the Python foreground is dynamically linked: it ran"


@pytest.mark.parametrize("case", CASES)
def test_the_sanitized_front_end_writes_the_same_record(
    envexec: Path, sanitized: str, tmp_path: Path, case: str
) -> None:
    env, args = CASES[case]
    records = []
    for name, hook in (("native", native_hook()), ("sanitized", sanitized)):
        (tmp_path / name).mkdir()
        config = write_config(tmp_path / name, unreachable_url())
        warm_settings(config)
        done = run(envexec, hook, config, env, args=args)
        said = done.stderr.decode(errors="replace")
        assert done.returncode == 0, said
        # Dynamically linked (ASan needs it): ld.so may say it skipped a preload, no more.
        assert "Sanitizer" not in said and "runtime error" not in said, said
        assert "Python foreground takes" not in said, said
        records.append(record_of(tmp_path / name))
    assert records[0] == records[1]


@pytest.mark.parametrize("case", ["unsafe spool", "full spool"])
def test_what_the_front_end_hands_over_is_logged_by_both(tmp_path: Path, case: str) -> None:
    """An unsafe spool (mode 0777) and a spool at max_events: the C front-end hands the login
    to the Python foreground, one syslog line each, and Python says why, as it always has."""
    extra = ("max_events = 1",) if case == "full spool" else ()
    config = write_config(tmp_path, unreachable_url(), *extra)
    warm_settings(config)
    (tmp_path / "spool").mkdir(mode=0o700)
    if case == "full spool":
        assert run_hook(config).returncode == 0
        assert len(spooled(tmp_path)) == 1
    else:
        (tmp_path / "spool").chmod(0o777)
    syslog = SyslogNamespace(tmp_path / "syslog")
    try:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **PAM_ENV}
        done = syslog.run([native_hook(), "--config", str(config)], env, timeout=15)
        assert done.returncode == 0
        handed = syslog.wait_for("the Python foreground takes this login")
        why = syslog.wait_for("event not spooled")
    finally:
        syslog.close()
    reason = "the spool is near its bounds" if case == "full spool" else "missing or unsafe"
    assert handed is not None and reason in handed, syslog.received
    assert why is not None, syslog.received
    assert ("max_events 1" if case == "full spool" else "writable by group or others") in why


@pytest.mark.parametrize("case", ["key login", "users copies first", "failed password"])
def test_the_aarch64_build_writes_the_same_record_under_qemu(
    envexec: Path, tmp_path: Path, case: str
) -> None:
    """The cross-built aarch64 front-end (gcc-aarch64-linux-gnu), run by qemu-user beside the
    venv's python (which it starts the publisher with, natively): the x86_64 build's record."""
    if shutil.which("qemu-aarch64") is None:
        missing("qemu-aarch64 (apt-get install qemu-user)")
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        missing("aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)")
    target = Path(sys.executable).with_name("loginwatch-hook-aarch64")
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copy(built("aarch64"), tmp)
    os.replace(tmp, target)
    env, args = CASES[case]
    records = []
    for name, argv in (("x86_64", [native_hook()]), ("aarch64", ["qemu-aarch64", str(target)])):
        (tmp_path / name).mkdir()
        config = write_config(tmp_path / name, unreachable_url())
        warm_settings(config)
        block = config.with_suffix(".env")
        block.write_bytes(b"".join(entry + b"\0" for entry in env))
        done = subprocess.run(
            [str(envexec), str(block), shutil.which(argv[0]) or argv[0], *argv[1:],
             "--config", str(config), *args],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        # qemu-aarch64 itself is dynamically linked: ld.so may say it skipped a preload.
        said = [line for line in done.stderr.splitlines() if not line.startswith(b"ERROR: ld.so:")]
        assert (done.returncode, said) == (0, []), done.stderr
        records.append(record_of(tmp_path / name))
    assert records[0] == records[1]
