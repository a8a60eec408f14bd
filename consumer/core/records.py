"""The host's records that are not PAM events, as the central side reads them.

A logout (``schemas.records.Logout``, recovered from wtmp or wtmpdb at flush time) becomes
the ``LoginEvent`` of the session's end it stands for (``logout_event``): the kind a route
matches (``logout``, ``console-end``), the user, tty and client address, its links (the
audit session), so routes, silences, the policy and the digest read it as any event, and
``session_length`` carries what ``last`` shows. A heartbeat's addresses are read here
too (``heartbeat_addresses``). Heartbeats are never events: they never reach a route.
"""

from __future__ import annotations

from schemas.compact import unpack_address
from schemas.event import LoginEvent, Outcome, PamType
from schemas.records import Heartbeat, Logout


def logout_event(record: Logout) -> LoginEvent:
    """The session's end ``record`` stands for, as an event (its id is the record's)."""
    return LoginEvent(
        id=record.id, time=record.time, host=record.host, service=record.service or "sshd",
        pam_type=PamType.CLOSE_SESSION, outcome=Outcome.SUCCESS, user=record.user,
        rhost=record.rhost, tty=record.tty, client_ip=unpack_address(record.client_ip),
        hook_version=record.hook_version, escaped=record.escaped, truncated=record.truncated,
        audit_session=record.audit_session, session_pid=record.session_pid,
    )  # fmt: skip


def heartbeat_addresses(beat: Heartbeat) -> tuple[str, ...]:
    """The host's own addresses a heartbeat lists, as text (bad lengths left out)."""
    found = []
    for raw in beat.addresses:
        try:
            found.append(unpack_address(raw))
        except ValueError:
            continue
    return tuple(found)
