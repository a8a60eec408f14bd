"""deploy/lib/pam.sh: the PAM file edits, the check, and jump arithmetic under pamtester."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy_host import REPO, InstalledHost, traversable_dir
from tests.support.hookrun import spool_records
from tests.support.pam_layouts import DEBIAN_FAMILY, layout_root
from tests.support.services import missing
from tests.support.sshd import TEST_PASSWORD, TEST_USER, PamNamespace, require_root_namespaces

PAM_SH = REPO / "deploy" / "lib" / "pam.sh"
HOOK = "auth [default=ignore] pam_exec.so quiet /hook --outcome failure"


def pam(function: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Call one function of pam.sh under /bin/sh (dash on Debian: no bashisms)."""
    return subprocess.run(
        ["sh", "-c", f'. "{PAM_SH}"; {function} "$@"', "sh", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


DEBIAN = """\
auth\t[success=1 default=ignore]\tpam_unix.so nullok
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
auth\toptional\t\t\tpam_cap.so
"""
TWO_MODULES = """\
# pam-auth-update with a second primary module
auth\t[success=2 default=ignore]\tpam_unix.so nullok
auth\t[success=1 default=ignore]\tpam_succeed_if.so quiet user = nobody
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
"""


@pytest.mark.parametrize(
    ("common_auth", "expected"),
    [
        (
            DEBIAN,
            [
                "auth\t[success=2 default=ignore]\tpam_unix.so nullok",
                HOOK,
                "auth\trequisite\t\t\tpam_deny.so",
                "auth\trequired\t\t\tpam_permit.so",
                "auth\toptional\t\t\tpam_cap.so",
            ],
        ),
        (
            TWO_MODULES,
            [
                "auth\t[success=3 default=ignore]\tpam_unix.so nullok",
                "auth\t[success=2 default=ignore]\tpam_succeed_if.so quiet user = nobody",
                HOOK,
                "auth\trequisite\t\t\tpam_deny.so",
                "auth\trequired\t\t\tpam_permit.so",
            ],
        ),
    ],
    ids=["debian", "two-modules"],
)
def test_the_hook_goes_before_pam_deny_and_jumps_over_it_grow(
    tmp_path: Path, common_auth: str, expected: list[str]
) -> None:
    path = tmp_path / "common-auth"
    path.write_text(common_auth)
    result = pam("pam_auth_block", path, HOOK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected


REFUSED = {
    # Reaching a line after a module without a success jump would not mean "failed".
    "faillock": "auth requisite pam_faillock.so preauth\n" + DEBIAN,
    "no pam_deny": "auth required pam_unix.so\n",
    "short jump": "auth [success=1 default=ignore] pam_unix.so\n"
    "auth [success=1 default=ignore] pam_sss.so\nauth requisite pam_deny.so\n",
    "nested include": "auth include other-auth\n" + DEBIAN,
}


@pytest.mark.parametrize("common_auth", REFUSED.values(), ids=REFUSED.keys())
def test_an_unfamiliar_common_auth_is_refused(tmp_path: Path, common_auth: str) -> None:
    path = tmp_path / "common-auth"
    path.write_text(common_auth)
    result = pam("pam_auth_block", path, HOOK)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.startswith("pam: ")


@pytest.mark.parametrize("layout", [*DEBIAN_FAMILY, "this machine"])
def test_strip_gives_back_the_original_bytes(tmp_path: Path, layout: str) -> None:
    # The vendored layouts of fresh machines, and (a smoke test) this machine's own files.
    if layout == "this machine":
        if not Path("/etc/pam.d/sshd").is_file():
            missing("/etc/pam.d/sshd (apt-get install openssh-server)")
        pam_dir = Path("/etc/pam.d")
    else:
        pam_dir = layout_root(layout, tmp_path / "root") / "etc" / "pam.d"
    original = (pam_dir / "sshd").read_bytes()
    sshd = tmp_path / "sshd"
    sshd.write_bytes(original)
    with_auth = pam("pam_add_auth", sshd, pam_dir / "common-auth", HOOK)
    assert with_auth.returncode == 0, with_auth.stderr
    (tmp_path / "a").write_text(with_auth.stdout)
    with_both = pam("pam_add_session", tmp_path / "a", "session optional pam_exec.so quiet /h")
    (tmp_path / "b").write_text(with_both.stdout)
    assert with_both.stdout.count("# >>> loginwatch") == 2
    assert pam("pam_strip", tmp_path / "b").stdout.encode() == original
    assert pam("pam_check", tmp_path / "b", pam_dir).returncode == 0


BROKEN_LINES = {
    "unknown control": ("auth requird pam_unix.so", 'unknown control "requird"'),
    "typo in a value": (
        "auth [sucess=1 default=ignore] pam_unix.so",
        'bad value=action "sucess=1"',
    ),
    "bad action": ("auth [success=one] pam_unix.so", 'bad value=action "success=one"'),
    "unknown type": ("sesion optional pam_permit.so", 'unknown type "sesion"'),
    "missing module": ("auth required pam_nope.so", "module pam_nope.so not found"),
    "missing include": ("@include common-nope", "includes missing /etc/pam.d/common-nope"),
    "unclosed bracket": ("auth [success=1 pam_unix.so", "unclosed ["),
    "no module": ("auth required", "no module"),
    "continued line": ("auth required \\", "line continuation"),
}


@pytest.mark.parametrize(("line", "reason"), BROKEN_LINES.values(), ids=BROKEN_LINES.keys())
def test_the_check_names_a_broken_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "sshd"
    path.write_text(f"# fine\n@include common-account\n{line}\nsession optional pam_permit.so\n")
    result = pam("pam_check", path, "/etc/pam.d")
    assert result.returncode == 1
    assert reason in result.stderr


def test_the_check_passes_every_file_of_this_machine() -> None:
    for path in sorted(Path("/etc/pam.d").iterdir()):
        result = pam("pam_check", path, "/etc/pam.d")
        assert result.returncode == 0, result.stderr


@pytest.mark.integration
@pytest.mark.sshd
def test_a_second_primary_module_still_decides_after_the_insert(tmp_path: Path) -> None:
    # With the hook inserted, pam_succeed_if's jump must still land past pam_deny:
    # `nobody` gets in with any password before and after, the test user only
    # with the right one.
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")

    def two_modules(etc: Path) -> None:
        (etc / "pam.d" / "common-auth").write_text(TWO_MODULES.replace("nullok", "nullok nodelay"))

    spool = tmp_path / "spool"
    config = f'[broker]\nurl = "amqp://guest:guest@127.0.0.1:1/%2F"\n[spool]\ndir = "{spool}"\n'
    host = InstalledHost(tmp_path, config, edit_etc=two_modules)
    assert "success=3" in host.pam_file.read_text()
    assert host.authenticate("nobody", "anything") == 0
    assert host.authenticate(TEST_USER, TEST_PASSWORD) == 0
    assert host.authenticate(TEST_USER, "wrong") != 0
    assert len(spool_records(spool)) == 1


def test_the_session_hook_goes_right_before_the_line_it_is_given(tmp_path: Path) -> None:
    sshd = tmp_path / "sshd"
    sshd.write_text(
        "session required pam_loginuid.so\n@include common-session\nsession optional pam_motd.so\n"
    )
    result = pam("pam_add_session", sshd, "session optional pam_exec.so quiet /h", "2")
    assert result.stdout.splitlines()[1:5] == [
        "# >>> loginwatch: login hook, before pam_env (install-host.sh)",
        "session optional pam_exec.so quiet /h",
        "# <<< loginwatch",
        "@include common-session",
    ]
    # Without pam_env anywhere, the hook goes last.
    alone = pam("pam_add_session", sshd, "session optional pam_exec.so quiet /h", "")
    assert alone.stdout.splitlines()[-2] == "session optional pam_exec.so quiet /h"


def pam_tree(root: Path, files: dict[str, str]) -> Path:
    """A --root tree holding ``files`` (paths below the root); returns the root."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


READENV = "pam_env.so user_readenv=1"
# Each layout: the files below --root, then what pam_user_env reports for
# etc/pam.d/sshd: (type, line of sshd it is reached through, the include chain).
LAYOUTS: dict[str, tuple[dict[str, str], list[tuple[str, str, str]]]] = {
    "auth via @include": (
        {
            "etc/pam.d/sshd": "@include common-auth\n",
            "etc/pam.d/common-auth": f"auth optional {READENV}\n",
        },
        [("auth", "1", "/etc/pam.d/sshd:1 > /etc/pam.d/common-auth:1")],
    ),
    "auth via include": (
        {"etc/pam.d/sshd": "# x\nauth include a\n", "etc/pam.d/a": f"auth required {READENV}\n"},
        [("auth", "2", "/etc/pam.d/sshd:2 > /etc/pam.d/a:1")],
    ),
    "auth via substack, -auth and [value=action]": (
        {
            "etc/pam.d/sshd": "auth substack a\n",
            "etc/pam.d/a": f"-auth [success=ok default=ignore] {READENV}\n",
        },
        [("auth", "1", "/etc/pam.d/sshd:1 > /etc/pam.d/a:1")],
    ),
    "nested four deep, mixed kinds": (
        {
            "etc/pam.d/sshd": "session required pam_unix.so\n@include a\n",
            "etc/pam.d/a": "auth substack b\n",
            "etc/pam.d/b": "@include c\n",
            "etc/pam.d/c": f"session optional pam_permit.so\nauth optional {READENV}\n",
        },
        [("auth", "2", "/etc/pam.d/sshd:2 > /etc/pam.d/a:1 > /etc/pam.d/b:1 > /etc/pam.d/c:2")],
    ),
    "account and password stacks too": (
        {
            "etc/pam.d/sshd": "account include a\npassword include a\n",
            "etc/pam.d/a": f"account required {READENV}\npassword required {READENV}\n",
        },
        [
            ("account", "1", "/etc/pam.d/sshd:1 > /etc/pam.d/a:1"),
            ("password", "2", "/etc/pam.d/sshd:2 > /etc/pam.d/a:2"),
        ],
    ),
    # "session include" takes only the session lines of the file it names.
    "an include takes its own type only": (
        {
            "etc/pam.d/sshd": "session include a\n",
            "etc/pam.d/a": f"auth required {READENV}\nsession required pam_env.so\n",
        },
        [],
    ),
    "session direct": (
        {"etc/pam.d/sshd": f"session required pam_unix.so\nsession required {READENV}\n"},
        [("session", "2", "/etc/pam.d/sshd:2")],
    ),
    "session via include of an include": (
        {
            "etc/pam.d/sshd": "@include common-session\n",
            "etc/pam.d/common-session": "session include site-env\n",
            "etc/pam.d/site-env": f"session required {READENV}\n",
        },
        [
            (
                "session",
                "1",
                "/etc/pam.d/sshd:1 > /etc/pam.d/common-session:1 > /etc/pam.d/site-env:1",
            )
        ],
    ),
    # libpam: case-insensitive types and controls, '#' ends a line, a trailing
    # backslash continues one (over comment lines), "[...]" is one argument.
    "libpam's syntax": (
        {
            "etc/pam.d/sshd": "SESSION Include a\n",
            "etc/pam.d/a": "session required \\\n# a comment\n  pam_env.so [user_readenv= 1]\n",
        },
        [("session", "1", "/etc/pam.d/sshd:1 > /etc/pam.d/a:1")],
    ),
    "user_readenv: the last one counts, any non-zero is on": (
        {
            "etc/pam.d/sshd": "auth optional pam_env.so user_readenv=1 user_readenv=0\n"
            "session optional pam_env.so user_readenv=0 user_readenv=01\n",
        },
        [("session", "2", "/etc/pam.d/sshd:2")],
    ),
    "comments are not lines": (
        {
            "etc/pam.d/sshd": f"# auth optional {READENV}\nauth required pam_unix.so # {READENV}\n",
        },
        [],
    ),
    "absolute include, under --root": (
        {"etc/pam.d/sshd": "auth include /srv/pam/x\n", "srv/pam/x": f"auth optional {READENV}\n"},
        [("auth", "1", "/etc/pam.d/sshd:1 > /srv/pam/x:1")],
    ),
    "libpam's vendor directory": (
        {"etc/pam.d/sshd": "@include v\n", "usr/lib/pam.d/v": f"auth optional {READENV}\n"},
        [("auth", "1", "/etc/pam.d/sshd:1 > /usr/lib/pam.d/v:1")],
    ),
}


@pytest.mark.parametrize(("files", "expected"), LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_walker_finds_every_pam_env_that_reads_the_users_file(
    tmp_path: Path, files: dict[str, str], expected: list[tuple[str, str, str]]
) -> None:
    root = pam_tree(tmp_path, files)
    result = pam("pam_user_env", root, root / "etc/pam.d/sshd")
    assert result.returncode == 0, result.stderr
    found = [tuple(line.split("\t")) for line in result.stdout.splitlines()]
    assert [(t, top, where) for t, top, _, where in found] == expected


def test_an_envfile_a_user_can_write_is_the_users_environment(tmp_path: Path) -> None:
    root = pam_tree(
        tmp_path,
        {
            "etc/pam.d/sshd": "auth optional pam_env.so envfile=/srv/env readenv=1\n"
            "auth optional pam_env.so envfile=/srv/off readenv=0\n",
            "srv/env": "",
            "srv/off": "",
        },
    )
    (root / "srv" / "env").chmod(0o666)
    (root / "srv" / "off").chmod(0o666)
    result = pam("pam_user_env", root, root / "etc/pam.d/sshd")
    assert result.stdout == (
        "auth\t1\t/srv/env, which others than root can write\t/etc/pam.d/sshd:1\n"
    ), result.stderr


BROKEN_STACKS = {
    "a cycle": (
        {
            "etc/pam.d/sshd": "@include a\n",
            "etc/pam.d/a": "auth include b\n",
            "etc/pam.d/b": "@include a\n",
        },
        "/etc/pam.d/sshd:1 > /etc/pam.d/a:1 > /etc/pam.d/b:1: include cycle back to /etc/pam.d/a",
    ),
    "a missing file": (
        {"etc/pam.d/sshd": "session required pam_unix.so\nsession include nope\n"},
        "/etc/pam.d/sshd:2: cannot read /etc/pam.d/nope",
    ),
}


@pytest.mark.parametrize(("files", "message"), BROKEN_STACKS.values(), ids=BROKEN_STACKS.keys())
def test_a_stack_libpam_cannot_load_is_an_error_not_a_hang(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    root = pam_tree(tmp_path, files)
    result = pam("pam_user_env", root, root / "etc/pam.d/sshd")
    assert (result.returncode, result.stdout) == (1, f"ERR\t{message}\n")


def test_the_first_session_line_that_reaches_pam_env(tmp_path: Path) -> None:
    root = pam_tree(
        tmp_path,
        {
            "etc/pam.d/sshd": "auth optional pam_env.so\nsession required pam_unix.so\n"
            "session include a\nsession required pam_env.so\n",
            "etc/pam.d/a": "session optional pam_permit.so\n@include b\n",
            "etc/pam.d/b": "session optional pam_env.so\n",
        },
    )
    assert pam("pam_first_env_line", root, root / "etc/pam.d/sshd").stdout == "3\n"


HOOK_PLACES = {
    "before pam_env": ("session required pam_unix.so\nsession required pam_env.so\n", "2\n"),
    "before a numeric jump that would count it": (
        "session [success=1 default=ignore] pam_succeed_if.so user = root\n"
        "session required pam_unix.so\nsession required pam_env.so\n",
        "1\n",
    ),
    "a jump after pam_env does not matter": (
        "session required pam_env.so\nSession [default=2] pam_permit.so\n",
        "1\n",
    ),
    "named actions do not count": (
        "session [success=ok default=bad] pam_selinux.so close\nsession required pam_env.so\n",
        "2\n",
    ),
    "no pam_env, no jump: at the end": ("session required pam_unix.so\n", ""),
}


@pytest.mark.parametrize(("sshd", "line"), HOOK_PLACES.values(), ids=HOOK_PLACES.keys())
def test_where_the_login_hook_goes(tmp_path: Path, sshd: str, line: str) -> None:
    root = pam_tree(tmp_path, {"etc/pam.d/sshd": sshd})
    assert pam("pam_session_hook_line", root, root / "etc/pam.d/sshd").stdout == line


# Layouts whose reading is libpam's own business: pam_deny marks the line in
# question. libpam (under pamtester) fails the operation exactly when it
# reaches that line; the walker, given the same files with a pam_env that
# reads the user's file in its place, must report it exactly then too.
LIBPAM_READS = {
    "@include inside a session include keeps to session": (
        {
            "probe": "auth required pam_permit.so\nsession include probe-a\n",
            "probe-a": "@include probe-b\n",
            "probe-b": "auth required pam_deny.so\nsession required pam_permit.so\n",
        },
        "authenticate",
        False,
    ),
    "a continuation runs over a comment line": (
        {"probe": "session required \\\n# a comment\n  pam_deny.so\n"},
        "open_session",
        True,
    ),
    "'#' ends a line anywhere": (
        {"probe": "session required pam_permit.so # pam_deny.so\n"},
        "open_session",
        False,
    ),
    "types and controls are case-insensitive": (
        {"probe": "Session Include probe-a\n", "probe-a": "SESSION REQUIRED pam_deny.so\n"},
        "open_session",
        True,
    ),
    "-session include": (
        {"probe": "-session include probe-a\n", "probe-a": "session required pam_deny.so\n"},
        "open_session",
        True,
    ),
}


@pytest.mark.integration
@pytest.mark.sshd
@pytest.mark.parametrize(
    ("files", "operation", "reached"), LIBPAM_READS.values(), ids=LIBPAM_READS.keys()
)
def test_the_walker_reads_a_stack_as_libpam_does(
    tmp_path: Path, files: dict[str, str], operation: str, reached: bool
) -> None:
    require_root_namespaces()
    if shutil.which("pamtester") is None:
        missing("pamtester (apt-get install pamtester)")
    ns = PamNamespace(traversable_dir() / "ns")
    for name, text in files.items():
        ns.set_service(name, text)
    _, out = ns.run(f"pamtester probe {TEST_USER} {operation} || true", "x\n")
    assert ("successfully" not in out) is reached, out
    root = pam_tree(
        tmp_path,
        {
            f"etc/pam.d/{name}": text.replace("pam_deny.so", "pam_env.so user_readenv=1")
            for name, text in files.items()
        },
    )
    walked = pam("pam_user_env", root, root / "etc/pam.d/probe")
    assert walked.returncode == 0, walked.stderr
    assert (walked.stdout != "") is reached, walked.stdout


def test_an_older_pam_env_reads_the_users_file_by_default(tmp_path: Path) -> None:
    # Linux-PAM < 1.4 read ~/.pam_environment unless told user_readenv=0; only
    # a module that carries 1.5's deprecation notice is known not to.
    old = tmp_path / "pam_env.so"
    old.write_bytes(b"\x7fELF pam_env 1.3.1")
    assert pam("pam_user_readenv_default", old).stdout == "1\n"
    assert pam("pam_user_readenv_default").stdout == "0\n"  # Debian 12's Linux-PAM 1.5.2
