"""What the mail templates see: every event field made visible, cut to size, as plain strings;
and the same facts as the channel-neutral notice the other channels format (``alert_notice``).

Templates never get the raw event: each value here went through ``display.visible`` (control
characters, bidi overrides and the like shown as ␍ / ``\\u202e``), so a template cannot print
a hostile character by mistake. HTML escaping stays with Jinja's autoescape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Final

from consumer.core import clock
from consumer.core.decisions import Action, Decision
from consumer.core.display import visible
from consumer.core.enriched import Enriched
from consumer.core.notice import Field, Notice, alert_data
from consumer.detect import words

KIND_LABELS: Final = {
    "login": "login",
    "logout": "logout",
    "failure": "failed login",
    "auth": "authentication",
    "account": "account check",
    "password": "password change",
    "unknown": "PAM event",
    "su": "su",
    "sudo": "sudo",
    "console": "console login",
    "su-end": "su session end",
    "sudo-end": "sudo session end",
    "console-end": "console logout",
    "su-failure": "failed su",
    "sudo-failure": "failed sudo",
    "console-failure": "failed console login",
}
# Field bounds for display: the whole value in the body, a short one in the subject.
BODY: Final = 512
SUBJECT: Final = 40


@dataclass(frozen=True)
class AlertView:
    event_id: str
    kind: str
    kind_label: str
    failed: bool
    user: str
    user_short: str
    host: str
    host_short: str
    service: str
    tty: str
    when: str
    source: str
    source_short: str
    rhost: str
    rdns: str
    rdns_verified: bool
    geo: str
    geo_short: str
    network: str
    server: str
    auth_method: str
    key_type: str
    fingerprint: str
    first_seen: tuple[str, ...]
    reason: str
    action: str
    recipient: str
    sent: int
    notes: tuple[str, ...]
    # What the user said to "was this you?" about this login (``yes``/``no``), and a flag
    # (``likely-scanner``); links to act on the alert (label, URL), all our own text.
    answer: str = ""
    answer_flag: str = ""
    links: tuple[tuple[str, str], ...] = ()
    # What the detections found (consumer/detect/words.py), one line each, most urgent
    # first, and the subject's prefix ("AFTER BRUTE FORCE", "NEW SOURCE", "").
    findings: tuple[str, ...] = ()
    tag: str = ""


def alert_view(
    enriched: Enriched, decision: Decision, links: tuple[tuple[str, str], ...] = ()
) -> AlertView:
    """The template context of one alert or burst mail; ``links``: its actions."""
    event = enriched.event
    source = event.client_ip or event.rhost
    found = found_in(enriched)
    first_seen = _first_seen(enriched)
    return AlertView(
        event_id=event.id_hex,
        kind=event.kind,
        kind_label=KIND_LABELS.get(event.kind, event.kind),
        failed=event.kind == "failure" or event.kind.endswith("-failure"),
        user=visible(event.user, BODY) or "(none)",
        user_short=visible(event.user, SUBJECT) or "(none)",
        host=visible(event.host, BODY),
        host_short=visible(event.host, SUBJECT),
        service=visible(event.service, BODY),
        tty=visible(event.tty, BODY),
        when=_when(event.time),
        source=visible(source, BODY) or "(local)",
        source_short=visible(source, SUBJECT) or "local",
        rhost=visible(event.rhost, BODY) if event.rhost and event.rhost != source else "",
        rdns=visible(enriched.rdns or "", BODY),
        rdns_verified=enriched.rdns_verified,
        geo=_geo(enriched),
        geo_short=visible(", ".join(p for p in (enriched.city, enriched.country) if p), SUBJECT),
        network=enriched.network or "",
        server=_server(event.server_ip, event.server_port),
        auth_method=visible(event.auth_method, BODY),
        key_type=visible(event.key_type, BODY),
        fingerprint=event.fingerprint,
        first_seen=first_seen,
        reason=visible(decision.reason, 2 * BODY),
        action=decision.action.value,
        recipient=decision.recipient or "",
        sent=decision.sent,
        notes=_notes(enriched),
        answer=enriched.answer,
        answer_flag=enriched.answer_flag,
        links=links,
        findings=tuple(line for _, line in found),
        tag=words.tag(found, bool(first_seen)),
    )


def found_in(enriched: Enriched) -> tuple[tuple[str, str], ...]:
    """What the detections found about the event, as (kind, line)."""
    return words.findings(enriched)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment.tzinfo else moment.isoformat()


def _geo(enriched: Enriched) -> str:
    country = enriched.country_name or enriched.country or ""
    if enriched.country and enriched.country_name:
        country = f"{enriched.country_name} ({enriched.country})"
    parts = [p for p in (enriched.city, country) if p]
    return visible(", ".join(parts), BODY)


def _server(ip: str, port: int) -> str:
    if not ip:
        return ""
    host = f"[{ip}]" if ":" in ip else ip
    return visible(f"{host}:{port}" if port else ip, BODY)


def _first_seen(enriched: Enriched) -> tuple[str, ...]:
    """The new sources of a successful login (a failed one has none: every brute-force
    source is new; the digest counts them)."""
    seen = enriched.first_seen
    if enriched.event.kind != "login":
        return ()
    labels = []
    if seen.address:
        labels.append("address")
    if seen.network:
        labels.append(f"network {enriched.network}" if enriched.network else "network")
    if seen.country:
        labels.append("country")
    return tuple(labels)


def _notes(enriched: Enriched) -> tuple[str, ...]:
    event = enriched.event
    notes = []
    if event.escaped:
        fields = ", ".join(visible(f, 32) for f in event.escaped)
        notes.append(f"Not valid UTF-8, shown with \\xNN escapes: {fields}.")
    if event.truncated:
        fields = ", ".join(visible(f, 32) for f in event.truncated)
        notes.append(f"Cut to size by the host: {fields}.")
    if event.dropped:
        notes.append(
            f"The host had to drop {event.dropped} earlier"
            f" event{'' if event.dropped == 1 else 's'} (spool full or disk full),"
            " lost before reaching loginwatch."
        )
    if enriched.received is not None:
        off = clock.offset(event.time, enriched.received)
        if clock.skewed(off):
            said = clock.describe(off)
            notes.append(f"{said[0].upper()}{said[1:]}: the host says {_when(event.time)},"
                         f" loginwatch received it {_when(enriched.received)}.")  # fmt: skip
    return tuple(notes)


def alert_notice(
    enriched: Enriched,
    decision: Decision,
    key: str,
    *,
    mail: EmailMessage | None = None,
    test: bool = False,
    links: tuple[tuple[str, str], ...] = (),
) -> Notice:
    """The channel-neutral notice of one alert or burst (``core/notice.py``): the mail's
    facts as labelled values, every value made visible by ``alert_view``."""
    view = alert_view(enriched, decision, links)
    burst = decision.action is Action.BURST
    summary = "Flood control" if burst else view.kind_label[:1].upper() + view.kind_label[1:]
    kind = "burst" if burst else "alert"
    found = found_in(enriched)
    tags = [view.kind, *(["first-seen"] if view.first_seen else []), *(["burst"] if burst else []),
            *(kind for kind, _ in found if kind != "session")]  # fmt: skip
    high = (bool(view.first_seen) or burst or enriched.event.user == "root"
            or any(kind != "session" for kind, _ in found))  # fmt: skip
    return Notice(
        key=key,
        target=decision.recipient or "",
        type=f"loginwatch.{'test' if test else kind}",
        summary=("[test] " if test else "") + summary,
        headline=(
            Field("of", view.user_short),
            Field("on", view.host_short),
            Field("from", view.source_short),
        ),
        fields=_fields(view),
        data=alert_data(enriched, decision, found),
        priority="high" if high else "default",
        tags=(*tags, *(["test"] if test else [])),
        arrived=enriched.received,
        mail=mail,
    )


def _fields(view: AlertView) -> tuple[Field, ...]:
    """Who, where, from where, which key, first-seen, why, the event id: the mail's lines."""
    verified = "verified" if view.rdns_verified else "not verified"
    key = " ".join(p for p in (view.key_type, view.fingerprint) if p)
    pairs = [
        ("User", view.user),
        ("Host", view.host),
        ("Service", " ".join(p for p in (view.service, view.tty) if p)),
        ("From", view.source),
        ("Remote host", view.rhost),
        (f"Reverse DNS ({verified})", view.rdns),
        ("Location", view.geo),
        ("Network", view.network),
        ("Server", view.server),
        ("Authentication", view.auth_method),
        ("Key", key),
        ("First seen", ", ".join(view.first_seen)),
        *(("Found", line) for line in view.findings),
        ("When", view.when),
        ("Why", view.reason),
        ("The user said", _said(view)),
        *(("Note", note) for note in view.notes),
        *view.links,
        ("Event", view.event_id),
    ]
    return tuple(Field(label, value) for label, value in pairs if value)


def _said(view: AlertView) -> str:
    """The user's answer as one line: ``NO, it wasn't me (escalated)``."""
    said = {"yes": "yes, it was me (recorded: nothing is silenced by it)",
            "no": "NO, it wasn't me (escalated)"}.get(view.answer, "")  # fmt: skip
    if said and view.answer_flag:
        said += "; a yes and a no within seconds: likely a mail scanner"
    return said
