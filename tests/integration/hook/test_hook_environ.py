"""What the hook reads of its environment, proven with a process Python cannot make: a C
program (gcc, not the unit tier's venv alone) that execs the hook's Python with one name
twice in its environment, as a user's ~/.pam_environment and pam_exec make it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_raw_environment_keeps_every_copy_where_os_environ_keeps_the_first(
    tmp_path: Path,
) -> None:
    # What CPython does with a duplicated name (os.environ: first copy wins),
    # and what capture.environment reads instead: the kernel's copy of the
    # block execve got. A C program makes the duplicate; Python cannot.
    source = tmp_path / "dup.c"
    source.write_text(
        "#include <unistd.h>\n"
        "int main(int argc, char **argv) {\n"
        '  char *env[] = {"PAM_USER=root", "PAM_SERVICE=sshd", "PAM_USER=lwtest",\n'
        '                 "PAM_TYPE=open_session", 0};\n'
        "  execve(argv[1], argv + 1, env);\n"
        "  return 127;\n"
        "}\n"
    )
    program = tmp_path / "dup"
    subprocess.run(["gcc", "-o", str(program), str(source)], check=True)
    script = (
        "import os; from producer import capture; "
        "print(os.environb[b'PAM_USER'].decode(), capture.environment()[b'PAM_USER'].decode())"
    )
    out = subprocess.run(
        [str(program), sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.split() == ["root", "lwtest"]
