"""System alerts: what the central side itself raises about a host, and when.

Four kinds, each with a kind name that routes and silences match with ``kinds``:

- ``host-flooding``: a host (its broker user) spent its budget of refused or flood-folded
  messages, and the worker now sheds them (consumer/alerts/shedding.py);
- ``login-dropped``: an event arrived saying its host had to drop events it could not
  spool or publish (``dropped_alert``);
- ``host-quiet``: a host sent no event and no heartbeat for ``[hosts] quiet_after``
  (``quiet_alert``; ``consumer/detect/quiet.py`` decides which);
- ``login-disowned``: the user of a login answered "No, it wasn't me" (consumer/questions/:
  it goes at once to the routes marked ``escalate = true``, through the same sent log and
  ``send_once``, but no silence and no flood budget holds it back).

A system alert goes the way of a login's alert: decided by the policy
(``Policy.decide_system``: routes, silences, a flood budget of its own kind), rendered, and
sent once per recipient through the same sent log (``SystemAlert.key``), so a redelivery or
a second worker never mails it twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from schemas.event import LoginEvent

HOST_FLOODING: Final = "host-flooding"
LOGIN_DROPPED: Final = "login-dropped"
HOST_QUIET: Final = "host-quiet"
LOGIN_DISOWNED: Final = "login-disowned"
SYSTEM_KINDS: Final = (HOST_FLOODING, LOGIN_DROPPED, HOST_QUIET, LOGIN_DISOWNED)
# One "host is flooding" mail per speaker and recipient per this many seconds, whichever
# worker noticed it first (the sent log's key names the period).
FLOODING_PERIOD_S: Final = 3600


class SystemAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One system alert. ``host`` and every text in it may be a host's choice (hostile):
    the view makes them inert. ``key`` names it in the sent log (with each recipient)."""

    kind: str
    host: str
    key: str
    time: datetime
    # host-flooding: the broker user, its budget, what it sent that counted against it.
    speaker: str = ""
    budget: int = 0
    window: float = 0.0
    refused: int = 0
    folded: int = 0
    reasons: tuple[str, ...] = ()
    # login-dropped: the event that said so, and what it said: how many events, how many
    # of them logins (None: the hook did not say), and those it listed (time, kind, user,
    # remote address; the last two in the hook's escaped form, hostile).
    event_id: str = ""
    dropped: int = 0
    hook_version: str = ""
    dropped_logins: int | None = None
    dropped_list: tuple[tuple[datetime, str, str, str], ...] = ()
    # host-quiet: its last report, and whether it said goodbye first (with why: stop…).
    quiet_since: datetime | None = None
    stopped: bool = False
    why: str = ""


def quiet_alert(
    host: str, since: datetime, *, stopped: bool, why: str, now: datetime
) -> SystemAlert:
    """``host-quiet`` for ``host``, silent since ``since``: one per silence (the key names
    its last report), so every worker that notices it raises the same alert."""
    key = f"{HOST_QUIET}:{host}:{since.timestamp():.0f}"
    return SystemAlert(kind=HOST_QUIET, host=host, key=key, time=now, quiet_since=since,
                       stopped=stopped, why=why)  # fmt: skip


def flooding_alert(
    speaker: str,
    host: str,
    *,
    now: datetime,
    budget: int,
    window: float,
    refused: int,
    folded: int,
    reasons: tuple[str, ...],
) -> SystemAlert:
    """``host-flooding`` for ``speaker`` (``host``: the host it speaks for, or the user)."""
    period = int(now.timestamp()) // FLOODING_PERIOD_S
    return SystemAlert(kind=HOST_FLOODING, host=host, key=f"{HOST_FLOODING}:{speaker}:{period}",
                       time=now, speaker=speaker, budget=budget, window=window,
                       refused=refused, folded=folded, reasons=reasons)  # fmt: skip


def dropped_alert(event: LoginEvent) -> SystemAlert | None:
    """``login-dropped`` when ``event`` says its host dropped a login, else None.

    A hook that says *what* it dropped (``dropped_list`` holds some of it) raises it only
    when logins were among them (``dropped_logins``), and the mail lists what it listed; a
    drop of failed passwords only is the digest's. An older hook's bare count
    (``dropped`` with nothing listed) may have been logins, so it raises it.
    """
    if event.dropped <= 0:
        return None
    said = bool(event.dropped_list)
    if said and event.dropped_logins <= 0:
        return None
    listed = tuple((d.time, d.kind, d.user, d.remote) for d in event.dropped_list)
    return SystemAlert(kind=LOGIN_DROPPED, host=event.host,
                       key=f"{LOGIN_DROPPED}:{event.id_hex}", time=event.time,
                       event_id=event.id_hex, dropped=event.dropped,
                       hook_version=event.hook_version,
                       dropped_logins=event.dropped_logins if said else None,
                       dropped_list=listed)  # fmt: skip


def sent_key(alert: SystemAlert, recipient: str) -> str:
    """The sent-log key of one system alert mail: one per alert and recipient."""
    return f"system:{alert.key}:{recipient.lower()}"
