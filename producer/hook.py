"""``loginwatch-hook``: run by pam_exec at every SSH login, as root.

The foreground captures the PAM environment into the spool, forks a detached
publisher and exits 0 at once: whatever fails, the login goes on. It imports
only what it must (``os``, ``sys``, ``_signal``, ``time``); anything but the
plain hook invocation is handed to the full command line in ``producer.cli``.
"""

from __future__ import annotations

# The C half of `signal`: the Python module wraps it in enums, and importing
# `enum` costs ~3 ms, a third of the foreground's own work.
import _signal as signal  # type: ignore[import-not-found]  # no stubs; same API
import os
import sys
import time

from producer import capture, safedir, settings, shared, spool
from producer.shared import log

# The foreground's hard bound: a hung disk or lock must not hold a login.
FOREGROUND_BOUND_S = 2


def main() -> int:
    """Entry point of ``loginwatch-hook``; exits 0 whatever happens in hook mode."""
    args = _fast_args(sys.argv[1:])
    if args is not None:
        return run_hook(*args)
    from producer import cli  # noqa: PLC0415 - not the login path

    parsed = cli.parse(sys.argv[1:])
    if parsed.command is None:  # the hook after all, with arguments argparse had to read
        return run_hook(shared.config_path(parsed.config), parsed.outcome)
    return cli.run(parsed)


def _fast_args(argv: list[str]) -> tuple[str, str] | None:
    """``[--config PATH] [--outcome X]`` → (config path, outcome); anything else → None."""
    config = shared.config_path(None)
    outcome = ""
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        name, eq, value = flag.partition("=")
        if name not in ("--config", "--outcome"):
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--config":
            config = value
        elif value in shared.OUTCOMES:
            outcome = value
        else:
            return None
    return config, outcome


def run_hook(config_path: str, outcome: str) -> int:
    """Spool this PAM run's event and start the publisher; always returns 0."""
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(FOREGROUND_BOUND_S)
    try:
        hook_settings = _settings(config_path)
        # Not os.environb: it keeps the first copy of a name, which may be the
        # user's (capture.environment says why and what it takes instead).
        name, data = capture.record(capture.environment(), outcome, time.time_ns())
        if _spool(hook_settings, name, data):
            _spawn_publisher(config_path)
    except Exception as exc:  # the login must go on, whatever broke
        log(f"hook failed: {type(exc).__name__}: {exc}")
    signal.alarm(0)
    return 0


def _spool(hook_settings: settings.HookSettings, name: str, data: bytes) -> bool:
    """Spool one record, logging what went wrong; returns whether to start a publisher."""
    try:
        evicted = spool.write(
            hook_settings.spool_dir, name, data, hook_settings.max_events, hook_settings.max_bytes
        )
    except safedir.UnsafePath as exc:
        # Nothing may be written there, not even the drop count, and a publisher
        # would refuse the directory too.
        log(f"event not spooled: {exc}")
        return False
    except (spool.SpoolFull, OSError) as exc:
        _drop(hook_settings.spool_dir, f"event not spooled: {exc}")
        return True
    if evicted:
        log(f"spool full: {evicted} failed-login record(s) dropped to keep this login")
    return True


def _settings(config_path: str) -> settings.HookSettings:
    cache = True
    try:
        found = settings.cached(config_path)
    except safedir.UnsafePath as exc:  # parse the config instead, and say why
        log(f"settings cache not used: {exc}")
        found, cache = None, False
    if found is not None:
        return found
    try:
        return settings.load(config_path, cache=cache)
    except Exception as exc:  # a broken config must not lose the event
        log(f"{exc}; spooling to {settings.DEFAULT.spool_dir}")
        return settings.DEFAULT


def _drop(spool_dir: str, why: str) -> None:
    try:
        total = spool.count_dropped(spool_dir)
    except OSError as exc:
        log(f"{why}; the drop could not be counted either: {exc}")
        return
    log(f"{why}; {total} dropped event(s) to report")


def _spawn_publisher(config_path: str) -> None:
    """Fork a child that publishes the spool, detached from the login.

    pam_exec already runs us in a session of our own; the child starts another
    and lets go of every descriptor, so nothing the login waits on stays open.
    It also yields the CPU to the login itself: importing pika and talking to the
    broker must not compete with sshd for a core.
    """
    if os.fork() != 0:
        return
    try:
        signal.alarm(0)
        os.setsid()
        _yield_cpu()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 256)
        from producer.publisher import publish_detached  # noqa: PLC0415 - child only

        publish_detached(config_path)
    except BaseException as exc:
        _log_crash(exc)
    finally:
        os._exit(0)


def _log_crash(exc: BaseException) -> None:
    """One line for whatever ended the publisher: a failed import leaves no other trace."""
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
    # If even this raises, the caller's os._exit still ends the child.
    log(f"publisher crashed, events stay spooled: {type(exc).__name__}: {exc}{where}")


def _yield_cpu() -> None:
    """Lower the publisher's priority (nice 10).

    Not SCHED_IDLE: on a host kept busy — by an attacker, say — an idle-class
    publisher might never run, and the alert would wait for the flush timer.
    """
    os.nice(10)


def _out_of_time(signum: int, frame: object) -> None:
    log(f"foreground took longer than {FOREGROUND_BOUND_S} s; the login goes on")
    os._exit(0)
