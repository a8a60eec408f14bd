"""What a system alert's mail templates (``system.*.j2``) and its channel-neutral notice see.

A system alert names a host, a broker user and reasons that a host's messages carried:
all of it may be hostile text, so each value goes through ``display.visible`` as the login
alert's do (``stages/notice.py``); HTML escaping stays with Jinja's autoescape, and every
other channel puts each ``Field.value`` in a literal construct of its own
(``core/notice.py``). A webhook receiver gets ``system_data``: the alert as loginwatch
raised it (type ``loginwatch.system`` in ``webhook.v1.schema.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Final

from consumer.core.decisions import Action, Decision
from consumer.core.display import visible
from consumer.core.notice import Field, Notice, decision_data
from consumer.core.system import HOST_FLOODING, HOST_QUIET, LOGIN_DROPPED, SystemAlert
from consumer.stages.notice import BODY, SUBJECT

KIND_LABELS: Final = {
    HOST_FLOODING: "host flooding loginwatch",
    LOGIN_DROPPED: "events dropped on a host",
    HOST_QUIET: "a host stopped reporting",
}


@dataclass(frozen=True)
class SystemView:
    kind: str
    kind_label: str
    event_id: str  # what the footer names: the event (login-dropped), else the alert's key
    host: str
    host_short: str
    when: str
    speaker: str
    budget: int
    window: str
    refused: int
    folded: int
    reasons: tuple[str, ...]
    dropped: int
    hook_version: str
    dropped_logins: int | None  # None: the hook did not say which events it dropped
    dropped_list: tuple[str, ...]  # "time kind user from remote", made visible
    reason: str
    burst: bool
    sent: int
    recipient: str
    # host-quiet: since when (its last report), and "stopped" (it said goodbye) or "gone".
    quiet_since: str = ""
    how: str = ""
    why: str = ""


def system_view(alert: SystemAlert, decision: Decision, window: str) -> SystemView:
    """The template context of one system alert mail; ``window``: the speaker budget's
    window as words ("1 minute")."""
    return SystemView(
        kind=alert.kind,
        kind_label=KIND_LABELS.get(alert.kind, visible(alert.kind, 64)),
        event_id=alert.event_id or visible(alert.key, 200),
        host=visible(alert.host, BODY),
        host_short=visible(alert.host, SUBJECT),
        when=alert.time.strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
        speaker=visible(alert.speaker, BODY),
        budget=alert.budget,
        window=window,
        refused=alert.refused,
        folded=alert.folded,
        reasons=tuple(visible(r, 200) for r in alert.reasons[:5]),
        dropped=alert.dropped,
        hook_version=visible(alert.hook_version, 64),
        dropped_logins=alert.dropped_logins,
        dropped_list=tuple(_dropped(entry) for entry in alert.dropped_list),
        reason=visible(decision.reason, 2 * BODY),
        burst=decision.action is Action.BURST,
        sent=decision.sent,
        recipient=decision.recipient or "",
        quiet_since=_stamp(alert.quiet_since),
        how=("stopped" if alert.stopped else "gone") if alert.kind == HOST_QUIET else "",
        why=visible(alert.why, 64),
    )


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment is not None else ""


def _dropped(entry: tuple[datetime, str, str, str]) -> str:
    when, kind, user, remote = entry
    stamp = when.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if when.year > 1970 else "time lost"
    source = f" from {visible(remote, 64)}" if remote else ""
    return f"{stamp}: {kind} of {visible(user, 64) or '(none)'}{source}"


def system_notice(
    alert: SystemAlert,
    decision: Decision,
    key: str,
    window: str,
    *,
    mail: EmailMessage | None = None,
) -> Notice:
    """The channel-neutral notice of one system alert (``core/notice.py``), every value
    made visible by ``system_view``; ``mail``: the rendered mail, for an address."""
    view = system_view(alert, decision, window)
    pairs = [
        ("Host", view.host),
        ("Broker user", view.speaker),
        ("Refused", str(view.refused) if view.kind == HOST_FLOODING else ""),
        ("Folded", str(view.folded) if view.kind == HOST_FLOODING else ""),
        *(("Refused for", reason) for reason in view.reasons),
        ("Dropped events", str(view.dropped) if view.dropped else ""),
        ("Of them logins", "" if view.dropped_logins is None else str(view.dropped_logins)),
        *(("Dropped", line) for line in view.dropped_list),
        ("Hook", view.hook_version),
        ("Last report", view.quiet_since),
        ("How", f"{view.how}: it said goodbye ({view.why})" if view.how == "stopped" else view.how),
        ("When", view.when),
        ("Why", view.reason),
        ("About", view.event_id),
    ]
    return Notice(
        key=key,
        target=decision.recipient or "",
        type="loginwatch.system",
        summary=view.kind_label[:1].upper() + view.kind_label[1:],
        headline=(Field("on", view.host_short),),
        fields=tuple(Field(label, value) for label, value in pairs if value),
        data=system_data(alert, decision),
        priority="high",
        tags=(alert.kind, *(["burst"] if decision.action is Action.BURST else [])),
        mail=mail,
    )


def system_data(alert: SystemAlert, decision: Decision) -> dict[str, Any]:
    """The webhook body's ``data`` for a system alert: the alert as raised (its text as
    the host sent it, hostile), and the decision."""
    return {
        "system": {
            "kind": alert.kind,
            "host": alert.host,
            "key": alert.key,
            "time": _iso(alert.time),
            "quiet_since": _iso(alert.quiet_since) if alert.quiet_since else None,
            "stopped": alert.stopped,
            "speaker": alert.speaker,
            "budget": alert.budget,
            "window_s": alert.window,
            "refused": alert.refused,
            "folded": alert.folded,
            "reasons": list(alert.reasons),
            "event_id": alert.event_id,
            "dropped": alert.dropped,
            "hook_version": alert.hook_version,
            "dropped_logins": alert.dropped_logins,
            "dropped_list": [
                {"time": _iso(when), "kind": kind, "user": user, "remote": remote}
                for when, kind, user, remote in alert.dropped_list
            ],
        },
        "decision": decision_data(decision),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
