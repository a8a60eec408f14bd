"""Escalation: a su or sudo to another user, tied to the login of its session.

The host's hook records, with each login, the session's links (``links``): the kernel's
audit session (``/proc/self/sessionid``, which pam_loginuid sets at the login and every
process of the session inherits; ``4294967295`` is "unset") and sshd's session process.
A su or sudo carries the same links, read by its own hook, and ``origin`` picks the login
its session began with: by the audit session first, by the sshd process otherwise.

What each link is worth: the audit session cannot be changed by the user (only a process
with CAP_AUDIT_CONTROL sets it, once), so a user cannot claim another session's login by
it; the sshd process is found by walking the su/sudo process's ancestors, which a user
cannot rewrite either, but a pid is reused after its process ends (a link is only as good
as the login row it finds: ``login_link`` keeps the latest login per host and link, and a
login replaces an older one of the same link). A host without either (a console without
pam_loginuid, a container) gets the escalation without its login: "no login found".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from consumer.core.detections import Escalation, Origin

ESCALATION_KINDS: Final = frozenset({"su", "sudo"})
UNSET_SESSION: Final = 4294967295  # the audit session of a process outside any
# The kinds whose sessions are logins other events of the session link back to.
LOGIN_KINDS: Final = frozenset({"login", "console"})


def links(audit_session: int | None, sshd_pid: int, start: int = 0) -> tuple[str, ...]:
    """A session's links as the ``login_link`` table keys them, the strongest first: its
    audit session (None or unset: none), its sshd process with the process's start time
    (a pid alone comes back)."""
    found = []
    if audit_session is not None and 0 < audit_session < UNSET_SESSION:
        found.append(f"audit:{audit_session}")
    if sshd_pid > 1:
        found.append(f"pid:{sshd_pid}:{start}")
    return tuple(found)


def link_words(link: str) -> str:
    """``audit:4`` → ``audit session 4``; ``pid:1234:99`` → ``sshd process 1234``."""
    kind, _, value = link.partition(":")
    if kind == "audit":
        return f"audit session {value}"
    return f"sshd process {value.partition(':')[0]}"


def origin(asked: tuple[str, ...], logins: Mapping[str, Origin]) -> Origin | None:
    """The login of a session whose links are ``asked`` (strongest first), from the logins
    the store found by link; None: none was found."""
    for link in asked:
        if link in logins:
            return logins[link]
    return None


def escalation(kind: str, target: str, origin_found: Origin | None) -> Escalation | None:
    """A su or sudo (``kind``) to ``target`` is an escalation, with its login if found;
    None for other kinds. An empty ``target`` is root (sudo's and su's default)."""
    if kind not in ESCALATION_KINDS:
        return None
    return Escalation(target=target or "root", via=kind, origin=origin_found)


def escalated_to_root(found: Escalation | None) -> bool:
    """Whether an escalation became root: what ``escalation_only`` routes mail at once."""
    return found is not None and found.target == "root"


def login_of_end(
    candidates: list[Origin],
    *,
    host: str,
    source: str,
    began: datetime,
    slack: float,
    pid: int = 0,
) -> Origin | None:
    """The login a session's end (a wtmp or wtmpdb record: no audit session, perhaps)
    belongs to: the user's login on ``host`` from ``source`` (when the record names one)
    that began within ``slack`` seconds of ``began``, the nearest; of those, one whose
    sshd process is ``pid`` (wtmp's ``ut_pid``) first. ``candidates`` carry their link in
    ``linked_by`` (``pid:N:START``…); None: none matched."""
    near = [
        o for o in candidates
        if o.host == host and (not source or o.source == source)
        and abs((o.at - began).total_seconds()) <= slack
    ]  # fmt: skip
    mark = f"pid:{pid}:"

    def rank(o: Origin) -> tuple[bool, float]:
        return not (pid and o.linked_by.startswith(mark)), abs((o.at - began).total_seconds())

    return min(near, key=rank, default=None)
