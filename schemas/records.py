"""The host's messages that are not PAM events: heartbeats (tag 3) and logouts (tag 4).

Both follow the event's rules (``schemas/event.py``): msgpack, ``array_like``, a tag of
their own, fields only appended with defaults, every text the remote side's or a user's
until proven otherwise, bounds in the types. ``schemas.wire.decode`` reads them beside the
events; the publisher sends each under a routing key of its own type
(``schemas.topology.message_type``), so a queue binds only the types it handles, and every
consumer still checks the type it got (the routing key is the publisher's choice).
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, Optional

import msgspec

from schemas.compact import RawAddr
from schemas.event import (
    Audit,
    Dropped,
    EventId,
    FieldNames,
    Host,
    Name,
    Outcome,
    PamType,
    Pid,
    Short,
    Time,
    check_time,
    event_kind,
)

# A host's own addresses a heartbeat lists (a bastion is usually dual-homed).
MAX_ADDRESSES: Final = 32
# Records waiting in a host's spool: its bound (``[spool] max_events``) is far below.
Depth = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Addresses = Annotated[tuple[RawAddr, ...], msgspec.Meta(max_length=MAX_ADDRESSES)]


class Heartbeat(msgspec.Struct, frozen=True, array_like=True, tag=3, kw_only=True):
    """This host's hook is alive: sent by each ``loginwatch-hook flush`` (the flush
    timer), and with ``goodbye`` when the host side is stopped cleanly (the flush unit's
    ``ExecStop``, a shutdown, ``install-host.sh --uninstall``): then a silence that
    follows is "stopped", not "gone".

    ``spool_depth``: records waiting in the spool after this flush; ``dropped``: what the
    spool dropped and no event has reported yet; ``addresses``: the host's own addresses
    (4 or 16 raw bytes each), loopback and link-local left out; ``why``: what
    said goodbye (``stop``, ``uninstall``).
    """

    id: EventId
    time: Time
    host: Host
    hook_version: Short = ""
    spool_depth: Depth = 0
    dropped: Dropped = 0
    addresses: Addresses = ()
    goodbye: bool = False
    why: Short = ""

    def __post_init__(self) -> None:
        check_time(self.time)

    @property
    def id_hex(self) -> str:
        return self.id.hex()


class LogoutSource(enum.IntEnum):
    """Which root-written record a logout was recovered from."""

    UNKNOWN = 0
    WTMP = 1  # utmp records in /var/log/wtmp (sshd writes them for sessions with a tty)
    WTMPDB = 2  # /var/lib/wtmpdb/wtmp.db (pam_wtmpdb: Debian 13 and later)


class LogoutEnd(enum.IntEnum):
    """How the session ended, as ``last`` says it."""

    LOGOUT = 0  # its own logout record
    DOWN = 1  # the host shut down (or rebooted) cleanly first: ``last``'s "down"
    CRASH = 2  # the host booted again with no shutdown record: ``last``'s "crash"


class Logout(msgspec.Struct, frozen=True, array_like=True, tag=4, kw_only=True):
    """A session's end, recovered at flush time from a record root writes and users
    cannot forge (wtmp, wtmpdb): how long it lasted, and what links it to its login.

    ``time``: when it ended; ``login_time``: when it began, from the same record pair, so
    ``length`` is what ``last`` shows. The link to the login's event: the same ``host``,
    ``login_time`` within a second or two of the event's ``time``, and ``session_pid``
    where the record has it (wtmp's ``ut_pid``: for sshd, the session's monitor, which is
    the login event's ``session_pid``: measured with a real sshd); without it (wtmpdb),
    the same ``user`` and ``client_ip``. ``tty`` is the line (``pts/0``), which the login
    event does not know (its PAM_TTY is ``ssh``).
    ``id`` is derived from the record (the same logout read twice has the same id).
    ``client_ip``: 4 or 16 raw bytes (``schemas.compact.unpack_address``); ``rhost``: the
    record's remote host text when it is no address; ``service``: the PAM
    service where the record names it (wtmpdb), ``login`` for a console line of wtmp.
    """

    id: EventId
    time: Time
    host: Host
    user: Name = ""
    tty: Short = ""
    login_time: Optional[Time] = None
    client_ip: RawAddr = b""
    rhost: Host = ""
    service: Short = ""
    source: LogoutSource = LogoutSource.UNKNOWN
    end: LogoutEnd = LogoutEnd.LOGOUT
    session_pid: Pid = 0
    audit_session: Optional[Audit] = None
    hook_version: Short = ""
    escaped: FieldNames = ()
    truncated: FieldNames = ()

    def __post_init__(self) -> None:
        check_time(self.time)
        if len(self.client_ip) not in (0, 4, 16):
            raise ValueError(f"$.client_ip: {len(self.client_ip)} raw bytes is no address")
        if self.login_time is not None:
            check_time(self.login_time)

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @property
    def length(self) -> Optional[float]:
        """The session's length in seconds (what ``last`` shows), None when unknown."""
        if self.login_time is None:
            return None
        return max((self.time - self.login_time).total_seconds(), 0.0)

    @property
    def kind(self) -> str:
        """``logout``, or ``console-end`` … as a session end's ``LoginEvent.kind``."""
        return event_kind(PamType.CLOSE_SESSION, Outcome.SUCCESS, self.service)
