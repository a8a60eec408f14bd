"""``loginwatch-hook``: run by pam_exec at every SSH login, as root.

The foreground captures the PAM environment into the spool, forks a detached
publisher and exits 0 at once: whatever fails, the login goes on. It imports
only what it must (``os``, ``sys``, ``_signal``, ``time``); anything but the
plain hook invocation is handed to the full command line in ``producer.cli``.

Its deadline (``FOREGROUND_BOUND_S``) raises ``_OutOfTime`` wherever the foreground
is, which unwinds it like any exception, and the hook then hands its record over
from ``run_hook``. Forking the publisher from the signal handler itself gave it the
foreground's state half made: a module half imported (the first run after a config
change imports the config's parser) made it crash, and the record it held was lost.
Steps that must not be split hold the deadline off (``producer.critical``).
"""

from __future__ import annotations

# The C half of `signal`: the Python module wraps it in enums, and importing
# `enum` costs ~3 ms, a third of the foreground's own work.
import _signal as signal  # type: ignore[import-not-found]  # no stubs; same API
import os
import sys
import time

from producer import capture, critical, safedir, settings, shared, spool
from producer.shared import log

# The foreground's hard bound: a hung disk or lock must not hold a login.
FOREGROUND_BOUND_S = 2
# The publisher lock's descriptor in the child.
_LOCK_FD = 3


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


class _OutOfTime(BaseException):
    """The foreground's deadline: no ``except Exception`` on the way stops it."""


class _Run:
    """How far this run got: what the rescue hands to the publisher."""

    CAPTURED, SPOOLING, SPOOLED, UNSPOOLED, DONE = range(1, 6)

    def __init__(self) -> None:
        self.stage = 0
        self.late = False  # the deadline fired
        self.bounded = True  # the deadline may (still) fire
        self.config_path = ""
        self.spool_dir = ""  # unknown until the settings are read
        self.name = ""
        self.data = b""
        self.lock_fd = -1


_run = _Run()


def run_hook(config_path: str, outcome: str) -> int:
    """Spool this PAM run's event and start the publisher; always returns 0."""
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(FOREGROUND_BOUND_S)
    _run.config_path = config_path
    try:
        try:
            _foreground(outcome)
        except Exception as exc:  # the login must go on, whatever broke
            _check_deadline(exc)
            log(f"hook failed: {type(exc).__name__}: {exc}")
            _rescue()
        _run.bounded = False  # an alarm from here on changes nothing
        signal.alarm(0)
    except _OutOfTime:
        _run.bounded = False  # first: no other alarm may raise past this clause
        signal.alarm(0)
        critical.let_go()  # in case it came as a section began
        log(f"foreground took longer than {FOREGROUND_BOUND_S} s; the login goes on")
        _rescue()
        if spool.UNCOUNTED:  # the ledger's lock kept us waiting: a child counts them
            _spawn_counter(_run.spool_dir)
        # At once: the interpreter's teardown takes a loaded host seconds the login
        # must not wait for.
        os._exit(0)
    return 0


def _foreground(outcome: str) -> None:
    # Not os.environb: it keeps the first copy of a name, which may be the
    # user's (capture.environment says why and what it takes instead).
    _run.name, _run.data = capture.record(capture.environment(), outcome, time.time_ns())
    _run.stage = _Run.CAPTURED
    hook_settings = _settings(_run.config_path)
    _run.spool_dir = hook_settings.spool_dir
    _run.stage = _Run.SPOOLING
    _run.stage = _Run.SPOOLED if _spool(hook_settings) else _Run.UNSPOOLED
    _start_publisher()


def _rescue() -> None:
    """Start a publisher, with the record in memory unless it is surely spooled, when
    the run broke (or ran out of time) before one had it."""
    if not _Run.CAPTURED <= _run.stage < _Run.DONE:
        return
    try:
        if not _run.spool_dir:  # the settings were not read yet: the child reads the config
            _run.lock_fd = spool.LOCK_TAKE
        elif _run.lock_fd < 0:
            _run.lock_fd = spool.try_lock(_run.spool_dir)
    except OSError:
        _run.lock_fd = spool.LOCK_TAKE
    try:
        if _run.stage == _Run.SPOOLED:
            if _run.lock_fd != spool.LOCK_BUSY:
                _spawn_publisher(_run.config_path, _run.lock_fd)
            _run.stage = _Run.DONE
        else:
            _hand_over()
    except Exception as exc:  # whatever it is, the login goes on
        log(f"record not handed over: {type(exc).__name__}: {exc}")


def _spool(hook_settings: settings.HookSettings) -> bool:
    """Spool this run's record, logging what went wrong; returns whether it is spooled."""
    try:
        evicted = spool.write(
            hook_settings.spool_dir,
            _run.name,
            _run.data,
            hook_settings.max_events,
            hook_settings.max_bytes,
        )
    except (spool.SpoolFull, OSError) as exc:  # UnsafePath too: nothing is written there
        log(f"event not spooled: {exc}")
        return False
    if evicted:
        log(f"spool full: {evicted} failed-login record(s) dropped to keep this login")
    return True


def _start_publisher() -> None:
    """Fork a publisher unless one runs; a record the spool refused goes along in memory.

    The publisher lock is taken here, before the fork, and the child inherits it: a
    hook that finds it taken forks nobody (a burst of failed passwords costs one
    publisher), and the running publisher, which looks at the spool once more after
    it lets go, takes the record. A login the spool refused is handed over even then,
    to a child of its own; a failure only with the lock, else counted as dropped.
    """
    try:
        _run.lock_fd = spool.try_lock(_run.spool_dir)
    except OSError:  # no lock file and no inode for one, an unsafe spool …
        _run.lock_fd = spool.LOCK_TAKE  # the child tries, and says why it cannot
    if _run.stage == _Run.SPOOLED:
        if _run.lock_fd != spool.LOCK_BUSY:
            _spawn_publisher(_run.config_path, _run.lock_fd)
        _run.stage = _Run.DONE
    elif _run.lock_fd >= 0 or spool.urgent(_run.data):
        _hand_over()
    else:
        # From here on the deadline hands it to a child that counts it.
        with critical.section():
            spool.UNCOUNTED.append(_run.data)
            _run.stage = _Run.DONE
        _drop("a publisher is busy and the spool refused this failure")


def _hand_over() -> None:
    """Fork a publisher that holds this run's record in memory."""
    spooled = _run.stage == _Run.SPOOLING
    handoff = spool.Handoff((_run.name, _run.data, _run.spool_dir, spooled))
    _spawn_publisher(_run.config_path, _run.lock_fd, handoff)


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
        _check_deadline(exc)
        log(f"{exc}; spooling to {settings.DEFAULT.spool_dir}")
        return settings.DEFAULT


def _drop(why: str) -> None:
    """Count what ``spool.UNCOUNTED`` holds (this run's record) as dropped."""
    try:
        total = spool.count_uncounted(_run.spool_dir)
    except OSError as exc:
        spool.UNCOUNTED.clear()
        log(f"{why}; the drop could not be counted either: {exc}")
        return
    log(f"{why}; {total} dropped event(s) to report")


def _spawn_publisher(config_path: str, lock_fd: int, handoff: spool.Handoff | None = None) -> None:
    """Fork a child that publishes, detached from the login.

    pam_exec already runs us in a session of our own; the child starts another
    and lets go of every descriptor but the publisher lock, so nothing the login
    waits on stays open. It also yields the CPU to the login itself: importing
    pika and talking to the broker must not compete with sshd for a core.
    """
    with critical.section():
        child = os.fork() == 0
        if not child:
            # The child has it now (a deadline from here on hands nothing over again).
            _run.stage, _run.lock_fd = _Run.DONE, spool.LOCK_BUSY
    if not child:
        if lock_fd >= 0:
            os.close(lock_fd)  # the child's copy keeps the lock
        return
    try:
        lock_fd = _detach(lock_fd)
        spool.UNCOUNTED.clear()  # the hook's to count (or its counter child's), not ours
        _yield_cpu()
        from producer.publisher import publish_detached  # noqa: PLC0415 - child only

        publish_detached(config_path, lock_fd, handoff)
    except BaseException as exc:
        log_crash(exc)
    finally:
        os._exit(0)


def _detach(keep: int = -1) -> int:
    """In a forked child: no alarm, a session of its own, every descriptor let go but
    ``keep`` (moved to ``_LOCK_FD``; returned), stdio on /dev/null, so nothing the
    login waits on stays open."""
    _run.bounded = False  # the foreground's deadline is not the child's
    signal.alarm(0)
    critical.let_go()
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if keep >= 0:
        os.dup2(keep, _LOCK_FD)
        keep = _LOCK_FD
    os.closerange(_LOCK_FD + 1 if keep >= 0 else _LOCK_FD, 256)
    return keep


def log_crash(exc: BaseException) -> None:
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
    """The foreground's bound: unwind it; ``run_hook`` then hands the record over unless
    a publisher has it already, and the login goes on. Nothing on the way back waits for
    another process (``spool.write`` counts no drop then), and the alarm comes again
    until ``run_hook`` has it: the exception may be swallowed on its way (an error in a
    ``__del__`` is only printed)."""
    if not _run.bounded:
        return
    _run.late = True
    signal.alarm(1)
    raise _OutOfTime


def _check_deadline(exc: Exception) -> None:
    """Raise ``_OutOfTime`` when ``exc`` is the deadline in disguise: another exception
    raised on its way (Python wraps one raised inside ``__set_name__``).

    Raises:
        _OutOfTime: the deadline has fired.
    """
    if _run.late:
        raise _OutOfTime from exc


def _spawn_counter(spool_dir: str) -> None:
    """Fork a child that counts ``spool.UNCOUNTED`` as dropped, however long the ledger's
    lock keeps it waiting (it holds them in memory; no publisher's imports)."""
    try:
        if os.fork() != 0:
            return
    except OSError as exc:
        log(f"{len(spool.UNCOUNTED)} dropped event(s) not counted: {exc}")
        return
    try:
        _detach()
        spool.count_uncounted(spool_dir)
    except BaseException as exc:
        log(f"dropped event(s) not counted: {type(exc).__name__}: {exc}")
    finally:
        os._exit(0)
