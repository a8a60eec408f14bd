"""What the mail templates see: every event field made visible, cut to size, as plain strings.

Templates never get the raw event: each value here went through ``display.visible`` (control
characters, bidi overrides and the like shown as ␍ / ``\\u202e``), so a template cannot print
a hostile character by mistake. HTML escaping stays with Jinja's autoescape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from consumer import clock
from consumer.decisions import Decision
from consumer.display import visible
from consumer.enriched import Enriched

KIND_LABELS: Final = {
    "login": "login",
    "logout": "logout",
    "failure": "failed login",
    "auth": "authentication",
    "account": "account check",
    "password": "password change",
    "unknown": "PAM event",
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


def alert_view(enriched: Enriched, decision: Decision) -> AlertView:
    """The template context of one alert or burst mail."""
    event = enriched.event
    source = event.client_ip or event.rhost
    return AlertView(
        event_id=event.id_hex,
        kind=event.kind,
        kind_label=KIND_LABELS.get(event.kind, event.kind),
        failed=event.kind == "failure",
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
        first_seen=_first_seen(enriched),
        reason=visible(decision.reason, 2 * BODY),
        action=decision.action.value,
        recipient=decision.recipient or "",
        sent=decision.sent,
        notes=_notes(enriched),
    )


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
    seen = enriched.first_seen
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
