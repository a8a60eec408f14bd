"""What the hook's foreground, its command line and its publisher share.

The config path rule (which ignores the environment under PAM), the outcomes a PAM
line may report, and the one-line log. Standard library only: the PAM foreground
imports it, and ``producer.hook`` sits on top of everything here, imported by nothing.
"""

from __future__ import annotations

import os

from schemas.paths import CONFIG_ENV, DEFAULT_CONFIG

OUTCOMES = ("success", "failure", "unknown")


def under_pam() -> bool:
    """Whether pam_exec started us: then the environment is (partly) the user's.

    pam_env with ``user_readenv=1`` puts ~/.pam_environment into the PAM
    environment pam_exec hands us. A root hook must take nothing from it but
    the PAM items: not its config path, not its cache directory.
    """
    return b"PAM_TYPE" in os.environb


def config_path(cli_value: str | None) -> str:
    """``--config PATH``, else ``$LOGINWATCH_CONFIG`` (never under PAM), else the default."""
    if cli_value:
        return cli_value
    return (None if under_pam() else os.environ.get(CONFIG_ENV)) or DEFAULT_CONFIG


def log(message: str) -> None:
    """One line to syslog (authpriv) and to stderr, where pam_exec discards it."""
    import contextlib  # noqa: PLC0415 - only when there is something to say
    import syslog  # noqa: PLC0415

    line = message.replace("\n", " ")[:900]
    syslog.openlog("loginwatch-hook", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    syslog.syslog(syslog.LOG_WARNING, line)
    with contextlib.suppress(OSError):
        os.write(2, f"loginwatch-hook: {line}\n".encode("utf-8", "replace"))
