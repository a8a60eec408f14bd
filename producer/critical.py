"""Steps a deadline must not split: a record changing hands and its bookkeeping.

The hook's foreground and its publisher each have a deadline that SIGALRM brings.
Some changes take two steps: a record is removed from the spool, then listed as given
way (``spool.UNCOUNTED``); a drop is written into the ledger, then forgotten; a
publisher is forked, then the hook notes that it has the record. A deadline between
the two steps loses the record without a trace, or counts it twice, or hands it over
twice. ``section`` blocks SIGALRM across such steps: the kernel keeps an alarm that
comes meanwhile pending and delivers it as the section ends. Only steps that wait for
no other process go inside (a write, a sync, an unlink, a fork; never a lock), so the
deadline stays a bound. Sections do not nest. This module imports only ``_signal``.
"""

from __future__ import annotations

# The C half of `signal` (producer.hook says why).
import _signal as signal  # type: ignore[import-not-found]  # no stubs; same API

_ALARM = {signal.SIGALRM}


class section:  # used like a function: `with critical.section():`
    """Hold SIGALRM off while the ``with`` block runs."""

    def __enter__(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _ALARM)

    def __exit__(self, *exc: object) -> None:
        let_go()


def let_go() -> None:
    """Let SIGALRM in again (an alarm held off meanwhile is delivered now). Also what a
    forked child does first: it inherits the mask of the section it was forked in."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _ALARM)
