"""``loginwatch web serve|passwd|keygen``: the web service behind the links, and its files.

``serve`` runs until SIGTERM (``consumer/web/server.py``). ``passwd NAME`` sets an
operator's password in ``[web] password_file`` (scrypt; read from the terminal twice, or
one line from standard input, never from the command line). ``keygen`` appends a new link
key to ``[web] secret_file`` (the newest signs, all verify: drop the oldest once its links
have expired). Both files are created 0600 before a byte is written, and replaced whole.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
import tempfile
from pathlib import Path

from consumer.commands._common import add_config_argument, config_of
from consumer.web import auth
from schemas.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "web",
        help="the web service of alert links and the operator page; its password and key files",
        description=(
            "loginwatch web serves the pages every alert and question links to: confirm an"
            " answer, acknowledge or silence (signed-in operators), and the operator page."
        ),
    )
    actions = parser.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    serve = actions.add_parser("serve", help="serve [web] listen until SIGTERM")
    add_config_argument(serve)
    serve.set_defaults(run=run_serve)
    passwd = actions.add_parser(
        "passwd",
        help="set an operator's password in [web] password_file",
        description="Reads the password from the terminal (twice) or one line of stdin.",
    )
    add_config_argument(passwd)
    passwd.add_argument("name", help="the operator's sign-in name (A-Z a-z 0-9 . _ @ -)")
    passwd.set_defaults(run=run_passwd)
    keygen = actions.add_parser("keygen", help="append a new link key to [web] secret_file")
    add_config_argument(keygen)
    keygen.set_defaults(run=run_keygen)


def run_serve(args: argparse.Namespace) -> int:
    from consumer.web.server import serve  # noqa: PLC0415 - uvicorn only for this command

    return serve(config_of(args))


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise ConfigError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def run_passwd(args: argparse.Namespace) -> int:
    config = config_of(args)
    path = config.web.password_file
    if path is None:
        raise ConfigError("$.web.password_file is not set (operators sign in by proxy_header)")
    if not auth.NAME.fullmatch(args.name):
        raise ConfigError(f"{args.name!r}: a name of 1-64 of A-Z a-z 0-9 . _ @ -")
    password = _password()
    if len(password) < 12:
        raise ConfigError("the password is shorter than 12 characters")
    lines = [line for line in _lines(path) if not line.startswith(f"{args.name}:")]
    write_private(path, [*lines, f"{args.name}:{auth.hash_password(password)}"])
    print(f"password of {args.name} set in {path}")
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    config = config_of(args)
    path = config.web.secret_file
    write_private(path, [*_lines(path), secrets.token_urlsafe(48)])
    print(f"new link key appended to {path}: restart the workers and loginwatch web")
    return 0


def _lines(path: str) -> list[str]:
    try:
        return [line for line in Path(path).read_text("utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def write_private(path: str, lines: list[str]) -> None:
    """Replace ``path`` with ``lines``: a temporary file made 0600 before any byte, then
    renamed over it (the old owner kept when root writes it)."""
    target = Path(path)
    owner = target.stat() if target.exists() else target.parent.stat()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, 0o600)
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
