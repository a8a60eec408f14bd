"""deploy/lib/pam.sh: the PAM file edits, the check, and jump arithmetic under pamtester."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.deploy_host import REPO, InstalledHost
from tests.sshd import TEST_PASSWORD, TEST_USER, require_root_namespaces

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


def test_strip_gives_back_the_original_bytes(tmp_path: Path) -> None:
    common_auth = tmp_path / "common-auth"
    common_auth.write_text(DEBIAN)
    original = Path("/etc/pam.d/sshd").read_bytes()
    sshd = tmp_path / "sshd"
    sshd.write_bytes(original)
    with_auth = pam("pam_add_auth", sshd, common_auth, HOOK)
    assert with_auth.returncode == 0, with_auth.stderr
    (tmp_path / "a").write_text(with_auth.stdout)
    with_both = pam("pam_add_session", tmp_path / "a", "session optional pam_exec.so quiet /h")
    (tmp_path / "b").write_text(with_both.stdout)
    assert with_both.stdout.count("# >>> loginwatch") == 2
    assert pam("pam_strip", tmp_path / "b").stdout.encode() == original
    assert pam("pam_check", tmp_path / "b", "/etc/pam.d").returncode == 0


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
    assert len(list(spool.glob("*.cap"))) == 1


def test_the_session_hook_goes_before_an_include_that_runs_pam_env(tmp_path: Path) -> None:
    sshd = tmp_path / "sshd"
    sshd.write_text(
        "session required pam_loginuid.so\n@include common-session\nsession optional pam_motd.so\n"
    )
    result = pam("pam_add_session", sshd, "session optional pam_exec.so quiet /h", "common-session")
    assert result.stdout.splitlines()[1:4] == [
        "# >>> loginwatch: login hook, before pam_env (install-host.sh)",
        "session optional pam_exec.so quiet /h",
        "# <<< loginwatch",
    ]
    assert result.stdout.splitlines()[4] == "@include common-session"
    # Without pam_env anywhere, the hook goes last.
    alone = pam("pam_add_session", sshd, "session optional pam_exec.so quiet /h")
    assert alone.stdout.splitlines()[-2] == "session optional pam_exec.so quiet /h"


def test_pam_env_files_names_the_files_that_run_pam_env(tmp_path: Path) -> None:
    (tmp_path / "common-session").write_text("session required pam_env.so user_readenv=1\n")
    (tmp_path / "other").write_text("# session required pam_env.so\nsession required pam_unix.so\n")
    assert pam("pam_env_files", tmp_path).stdout == "common-session\n"
