"""install-host.sh and install-central.sh into --root trees: idempotent, reversible, safe."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from schemas.config import load_config
from tests.support import native
from tests.support.deploy_host import REPO, VENV, run_install

INSTALL_CENTRAL = REPO / "deploy" / "install-central.sh"


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file and directory under ``root``: relative path → (mode, bytes)."""
    files: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        files[str(path.relative_to(root))] = (path.lstat().st_mode, data)
    return files


def install_host(root: Path, *args: str | Path) -> str:
    return run_install("--root", root, "--venv", VENV, *args)


def test_installing_twice_gives_the_same_tree(root: Path) -> None:
    install_host(root)
    first = snapshot(root)
    output = install_host(root)
    assert snapshot(root) == first
    assert "already up to date" in output
    hook = root / "usr/local/sbin/loginwatch-hook"
    if native.built().exists():  # make test builds it (make native-check)
        assert os.readlink(hook) == f"{VENV}/bin/loginwatch-hook-native"
        assert "the hook's foreground is the C front-end (loginwatch-hook 0." in output
    else:
        assert hook.read_text().startswith(f"#!{VENV}/bin/python -I\n")
    assert oct(first["var/spool/loginwatch"][0] & 0o777) == "0o700"
    assert oct(first["etc/loginwatch/host.toml"][0] & 0o777) == "0o600"


def test_the_hook_falls_back_to_python_where_no_front_end_runs_and_says_so(root: Path) -> None:
    """A machine of an architecture the bundle has no build for (here: a directory without
    one) gets the Python foreground, and install-host.sh says which one the hook runs."""
    script = f'. {REPO}/deploy/lib/files.sh; say() {{ echo "$*"; }}; native_hook {root} {root}'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "the hook's foreground is Python: no C front-end for" in done.stdout
    assert not (root / "loginwatch-hook-native").exists()
    install_host(root)
    hook = root / "usr/local/sbin/loginwatch-hook"
    version = subprocess.run([str(hook), "--version"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    assert "(foreground: native C, " in version or "(foreground: Python " in version


def test_uninstall_restores_the_pam_file_byte_for_byte(root: Path) -> None:
    pam_file = root / "etc/pam.d/sshd"
    # A file without a final newline is the hardest case for a text tool.
    original = pam_file.read_bytes().rstrip(b"\n")
    pam_file.write_bytes(original)
    os.chmod(pam_file, 0o640)
    install_host(root)
    assert b"loginwatch-hook" in pam_file.read_bytes()
    install_host(root, "--uninstall")
    assert pam_file.read_bytes() == original
    assert oct(pam_file.stat().st_mode & 0o777) == "0o640"
    assert not (root / "usr/local/sbin/loginwatch-hook").exists()
    assert not (root / "etc/systemd/system/loginwatch-flush.timer").exists()
    # Unsent events and the config stay.
    assert (root / "etc/loginwatch/host.toml").exists()
    assert (root / "var/spool/loginwatch").is_dir()


def test_uninstall_keeps_what_the_operator_changed_since(root: Path) -> None:
    pam_file = root / "etc/pam.d/sshd"
    original = pam_file.read_text()
    install_host(root)
    pam_file.write_text(pam_file.read_text() + "account required pam_permit.so\n")
    output = install_host(root, "--uninstall")
    assert pam_file.read_text() == original + "account required pam_permit.so\n"
    assert "restored" in output


def test_a_pam_file_that_fails_the_check_is_never_installed(root: Path) -> None:
    pam_file = root / "etc/pam.d/sshd"
    broken = pam_file.read_text() + "account requird pam_permit.so\n"
    pam_file.write_text(broken)
    proc = subprocess.run(
        ["sh", str(REPO / "deploy/install-host.sh"), "--root", str(root), "--venv", str(VENV)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert 'unknown control "requird"' in proc.stderr
    assert "refusing to install" in proc.stderr
    assert pam_file.read_text() == broken


def test_an_unfamiliar_common_auth_gets_the_session_hook_only(root: Path) -> None:
    common_auth = root / "etc/pam.d/common-auth"
    common_auth.write_text("auth requisite pam_faillock.so preauth\n" + common_auth.read_text())
    output = install_host(root)
    text = (root / "etc/pam.d/sshd").read_text()
    assert "--outcome failure" not in text
    assert "session optional pam_exec.so quiet" in text
    assert "failed passwords will not be reported" in output


def test_no_failures_installs_the_session_hook_only(root: Path) -> None:
    install_host(root, "--no-failures")
    text = (root / "etc/pam.d/sshd").read_text()
    assert "--outcome failure" not in text
    assert "@include common-auth" in text
    assert text.count("# >>> loginwatch") == 1


def test_the_installed_config_is_the_given_one_and_is_never_overwritten(
    root: Path, tmp_path: Path
) -> None:
    given = tmp_path / "given.toml"
    given.write_text('[host]\nname = "web-1"\n')
    install_host(root, "--config", given)
    installed = root / "etc/loginwatch/host.toml"
    assert installed.read_text() == given.read_text()
    installed.write_text('[host]\nname = "edited"\n')
    install_host(root, "--config", given)
    assert installed.read_text() == '[host]\nname = "edited"\n'


def test_central_install_twice_gives_the_same_tree_and_uninstall_removes_it(
    tmp_path: Path,
) -> None:
    central = tmp_path / "central"
    central.mkdir()
    args = ("--root", central, "--venv", VENV)
    run_install(*args, script=INSTALL_CENTRAL)
    first = snapshot(central)
    run_install(*args, script=INSTALL_CENTRAL)
    assert snapshot(central) == first
    for unit in ("loginwatch-worker@.service", "loginwatch-digest.service",
                 "loginwatch-web.service"):  # fmt: skip
        assert (central / "etc/systemd/system" / unit).read_bytes() == (
            REPO / "deploy/systemd" / unit
        ).read_bytes().replace(b"/opt/loginwatch", str(VENV).encode())
    for secret in ("web-keys", "web-passwords"):  # 0600 from the first byte (write_file)
        assert (central / "etc/loginwatch" / secret).stat().st_mode & 0o777 == 0o600
    assert len((central / "etc/loginwatch/web-keys").read_text().strip()) >= 48
    run_install(*args, "--uninstall", script=INSTALL_CENTRAL)
    assert not (central / "etc/systemd/system/loginwatch-worker@.service").exists()
    assert (central / "etc/loginwatch/loginwatch.toml").exists()


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(REPO / "deploy/install-host.sh"), "--root", str(root), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_notices_a_common_auth_changed_since_the_install(root: Path) -> None:
    install_host(root)
    assert check(root).returncode == 0
    common_auth = root / "etc/pam.d/common-auth"
    # What pam-auth-update does when a package adds an option or a module.
    common_auth.write_text(common_auth.read_text().replace("nullok", "nullok try_first_pass"))
    stale = check(root)
    assert stale.returncode == 1
    assert "+auth\t[success=2 default=ignore]\tpam_unix.so nullok try_first_pass" in stale.stdout
    assert "run it again" in stale.stdout
    install_host(root)
    assert check(root).returncode == 0


def test_uninstall_where_nothing_was_installed_touches_nothing(root: Path) -> None:
    pam_file = root / "etc/pam.d/sshd"
    pam_file.write_bytes(pam_file.read_bytes().rstrip(b"\n"))
    before = snapshot(root)
    output = install_host(root, "--uninstall")
    assert "has no loginwatch lines" in output
    assert snapshot(root) == before


def test_the_password_file_is_installed_private_and_replaced_by_a_new_one(
    root: Path, tmp_path: Path
) -> None:
    issued = tmp_path / "web-1.password"
    issued.write_text("first\n")
    install_host(root, "--password-file", issued)
    installed = root / "etc/loginwatch/host.password"
    assert (installed.read_text(), oct(installed.stat().st_mode & 0o777)) == ("first\n", "0o600")
    issued.write_text("rotated\n")
    install_host(root, "--password-file", issued)
    assert installed.read_text() == "rotated\n"


@pytest.mark.parametrize(
    ("template", "password_file"),
    [
        ("loginwatch-host.toml", "/etc/loginwatch/host.password"),
        ("loginwatch-central.toml", "/etc/loginwatch/broker.password"),
    ],
)
def test_the_config_templates_are_valid_configs(template: str, password_file: str) -> None:
    config = load_config(REPO / "deploy" / template)
    assert config.broker.password_file == password_file


def test_a_central_machine_installs_the_hook_with_a_config_of_its_own(
    root: Path, tmp_path: Path
) -> None:
    central = root / "etc/loginwatch/loginwatch.toml"
    central.parent.mkdir(parents=True)
    central.write_text("# the central side's config\n")
    given = tmp_path / "host.toml"
    given.write_text('[host]\nname = "broker-1"\n')
    install_host(root, "--config", given, "--config-path", "/etc/loginwatch/host.toml")
    assert central.read_text() == "# the central side's config\n"
    assert (root / "etc/loginwatch/host.toml").read_text() == given.read_text()
    pam_text = (root / "etc/pam.d/sshd").read_text()
    assert pam_text.count("--config /etc/loginwatch/host.toml") == 2
    unit = (root / "etc/systemd/system/loginwatch-flush.service").read_text()
    assert "--config /etc/loginwatch/host.toml flush" in unit
    # Later runs remember the path.
    assert check(root).returncode == 0
    install_host(root, "--uninstall")
    assert not (root / "var/lib/loginwatch-host").exists()


def test_central_install_makes_the_store_directory_and_a_group_readable_config(
    tmp_path: Path,
) -> None:
    central = tmp_path / "central"
    central.mkdir()
    run_install("--root", central, "--venv", VENV, script=INSTALL_CENTRAL)
    # A worker run by hand as loginwatch needs it (systemd's StateDirectory= is the units' only).
    store = central / "var/lib/loginwatch"
    assert oct(store.stat().st_mode & 0o7777) == "0o750"
    config = central / "etc/loginwatch/loginwatch.toml"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert oct((central / "etc/loginwatch").stat().st_mode & 0o777) == "0o750"


def test_a_host_installed_by_an_older_script_keeps_its_state_and_uninstalls_byte_for_byte(
    root: Path,
) -> None:
    pam_file = root / "etc/pam.d/sshd"
    original = pam_file.read_bytes()
    install_host(root)
    # Where an older install-host.sh kept it: inside the service user's /var/lib/loginwatch.
    legacy = root / "var/lib/loginwatch/install"
    legacy.parent.mkdir(parents=True)
    (root / "var/lib/loginwatch-host").rename(legacy)
    output = install_host(root, "--uninstall")
    assert "moved /var/lib/loginwatch/install to /var/lib/loginwatch-host" in output
    assert pam_file.read_bytes() == original
    assert not legacy.exists()


def refused_install(root: Path, *args: str | Path) -> str:
    proc = subprocess.run(
        ["sh", str(REPO / "deploy/install-host.sh"), "--root", str(root), "--venv", str(VENV)]
        + [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stderr


def test_a_config_cannot_make_root_write_the_password_outside_its_directory(
    root: Path, tmp_path: Path
) -> None:
    config = tmp_path / "web-1.toml"
    config.write_text('[broker]\npassword_file = "/etc/cron.d/loginwatch"\n')
    issued = tmp_path / "web-1.password"
    issued.write_text("* * * * * root id\n")
    message = refused_install(root, "--config", config, "--password-file", issued)
    assert "outside /etc/loginwatch" in message
    assert "--password-path /etc/cron.d/loginwatch" in message
    assert not (root / "etc/cron.d/loginwatch").exists()


def test_a_spool_dir_that_exists_and_is_not_a_spool_of_its_own_is_refused(
    root: Path, tmp_path: Path
) -> None:
    config = tmp_path / "web-1.toml"
    config.write_text('[spool]\ndir = "/etc"\n')
    mode = (root / "etc").stat().st_mode
    message = refused_install(root, "--config", config)
    assert "[spool] dir /etc: not a spool of its own" in message
    assert (root / "etc").stat().st_mode == mode
    assert "loginwatch-hook" not in (root / "etc/pam.d/sshd").read_text()


def test_a_later_run_without_venv_keeps_the_venv_the_first_run_was_given(root: Path) -> None:
    install_host(root)
    first = snapshot(root)
    run_install("--root", root)  # no --venv: the recorded one, not a new venv in the tree
    assert snapshot(root) == first
    assert not (root / "opt").exists()


def test_a_rerun_puts_a_widened_password_file_back_to_0600(root: Path, tmp_path: Path) -> None:
    issued = tmp_path / "web-1.password"
    issued.write_text("first\n")
    install_host(root, "--password-file", issued)
    installed = root / "etc/loginwatch/host.password"
    installed.chmod(0o644)
    os.chown(installed, 65534, 65534)
    install_host(root, "--password-file", issued)
    info = installed.stat()
    assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o777)) == (0, 0, "0o600")
    assert installed.read_text() == "first\n"


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("config", "why", "venv"),
    [
        # The central side's password file, named by an old snippet: the case. No
        # --venv: the refused run must not even make the venv (it reads the config in a
        # throwaway one first).
        ('[broker]\npassword_file = "/etc/loginwatch/broker.password"\n',
         "/etc/loginwatch/broker.password exists and install-host.sh did not write it", None),
        ("[broker]\nurl = 5\n", "$.broker.url", VENV),
        ('[spool]\ndir = "/etc"\n', "[spool] dir /etc: not a spool of its own", VENV),
    ],
    ids=["central password", "bad value", "foreign spool"],
)  # fmt: skip
def test_a_refused_install_leaves_nothing_behind_and_a_fixed_config_goes_in(
    root: Path, tmp_path: Path, config: str, why: str, venv: Path | None
) -> None:
    central = root / "etc/loginwatch/broker.password"
    central.parent.mkdir(parents=True, exist_ok=True)
    central.write_text("the central side's\n")
    given, issued = tmp_path / "web-1.toml", tmp_path / "web-1.password"
    given.write_text(config)
    issued.write_text("host secret\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    before = snapshot(root)
    proc = subprocess.run(
        ["sh", str(REPO / "deploy/install-host.sh"), "--root", str(root),
         *(["--venv", str(venv)] if venv else []),
         "--config", str(given), "--password-file", str(issued)],
        capture_output=True, text=True, timeout=540, check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert why in proc.stderr
    assert snapshot(root) == before  # no venv, no state, no config copy, no PAM change
    assert list(scratch.iterdir()) == []  # nor the throwaway venv
    # The operator fixes the file they passed and runs the script again: it goes in.
    given.write_text('[broker]\npassword_file = "/etc/loginwatch/host.password"\n')
    install_host(root, "--config", given, "--password-file", issued)
    assert (root / "etc/loginwatch/host.toml").read_text() == given.read_text()
    assert (root / "etc/loginwatch/host.password").read_text() == "host secret\n"


def test_a_new_config_replaces_ours_until_someone_edits_it(root: Path, tmp_path: Path) -> None:
    given = tmp_path / "web-1.toml"
    given.write_text('[host]\nname = "web-1"\n')
    install_host(root, "--config", given)
    installed = root / "etc/loginwatch/host.toml"
    given.write_text('[host]\nname = "web-2"\n')
    out = install_host(root, "--config", given)  # unedited since we wrote it: replaced
    assert f"replacing /etc/loginwatch/host.toml with {given}" in out
    assert installed.read_text() == given.read_text()
    installed.write_text('[host]\nname = "edited"\n')
    given.write_text('[host]\nname = "web-3"\n')
    out = install_host(root, "--config", given)  # edited on the host: kept, and said so
    [line] = [line for line in out.splitlines() if "differs" in line]
    assert line == (
        f"install-host: /etc/loginwatch/host.toml differs from {given} and was edited since"
        f" install-host.sh wrote it: kept it (remove it, or edit it, to take {given})"
    )
    assert installed.read_text() == '[host]\nname = "edited"\n'


def test_a_host_without_a_suitable_python_is_told_in_one_line_what_to_install(
    root: Path, tmp_path: Path
) -> None:
    old = tmp_path / "python3"  # Ubuntu 20.04's, say
    old.write_text("#!/bin/sh\necho 3.8\n")
    old.chmod(0o755)
    before = snapshot(root)
    proc = subprocess.run(
        ["sh", str(REPO / "deploy/install-host.sh"), "--root", str(root), "--python", str(old)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"install-host: needs Python 3.9 to 3.13 for the hook, found {old} (3.8): install"
        " python3.9 or later (apt-get install python3, dnf install python3.11), or give --python"
    ]
    assert snapshot(root) == before
