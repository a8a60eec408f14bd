"""The channel-neutral notice: what one target is told, before any channel formats it.

Every channel formats a ``Notice`` in code (``consumer/channels/``), never through the
operator's templates, so how hostile text is made inert cannot depend on a template. A
notice holds two kinds of text, kept apart on purpose: ``label`` and ``summary`` are ours;
every ``Field.value`` is, or contains, text a remote party chose (a user name, a host name,
a PTR record, the policy's reason quoting them). Values arrive made visible
(``display.visible``: no control, bidi or invisible character) and cut to ``BODY``; each
channel puts every value inside its own literal construct (a Slack ``plain_text`` element,
a Markdown code span, Telegram's ``<code>``, an escaped Adaptive Card TextBlock).

``data`` is the machine-readable body a webhook receiver gets (``alert_data``: the event
exactly as the host reported it, what loginwatch learned about it, the decision), versioned
by ``consumer/channels/webhook.v1.schema.json``. An address's notice also carries the mail
the templates rendered (``mail``): mail is the one channel an operator may restyle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Final

from consumer.core.decisions import Decision
from consumer.core.enriched import Enriched

PRIORITIES: Final = ("low", "default", "high")


@dataclass(frozen=True)
class Field:
    """One line of a notice: ``label`` is ours, ``value`` may hold remote-chosen text."""

    label: str
    value: str


@dataclass(frozen=True)
class Notice:
    """One notice for one target (an address, or ``receiver:NAME``).

    ``key`` is the delivery key: the sent log's key, and what a receiver may fold resends
    by (a webhook's ``webhook-id``, ntfy's ``sequence_id``); the same on every retry.
    ``summary`` is a few words of ours (``SSH login``); ``headline`` the values that follow
    it (who, on which host, from where); ``fields`` the rest, in order. ``arrived`` is when
    loginwatch received the event (latency is measured from there, not the host's clock).
    """

    key: str
    target: str
    type: str  # loginwatch.alert, loginwatch.burst, loginwatch.digest, loginwatch.test
    summary: str
    headline: tuple[Field, ...]
    fields: tuple[Field, ...]
    data: Mapping[str, Any]
    priority: str = "default"
    tags: tuple[str, ...] = ()
    arrived: datetime | None = None
    made: datetime = field(default_factory=lambda: datetime.now(UTC))
    mail: EmailMessage | None = None

    @property
    def title(self) -> str:
        """The summary and the headline as one plain line (values as they are)."""
        parts = [self.summary, *(f"{f.label} {f.value}".strip() for f in self.headline)]
        return " ".join(p for p in parts if p)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``…`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


def _stamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def decision_data(decision: Decision) -> dict[str, Any]:
    """A decision as the webhook's JSON carries it (``webhook.v1.schema.json``'s
    ``decision``), for login and system alerts alike."""
    return {
        "action": decision.action.value,
        "reason": decision.reason,
        "recipient": decision.recipient,
        "route": decision.route,
        "sent": decision.sent,
        "burst": decision.burst.value if decision.burst else None,
    }


def alert_data(
    enriched: Enriched, decision: Decision, findings: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    """The webhook body's ``data`` for one alert or burst (schema: webhook.v1.schema.json):
    the event's fields exactly as the host sent them, the enrichment with ``findings``
    (kind, line: consumer/detect/words.py), the decision."""
    event = enriched.event
    seen = enriched.first_seen
    return {
        "event": {
            "id": event.id_hex,
            "time": _stamp(event.time),
            "host": event.host,
            "kind": event.kind,
            "service": event.service,
            "pam_type": event.pam_type.name.lower(),
            "outcome": event.outcome.name.lower(),
            "user": event.user,
            "ruser": event.ruser,
            "rhost": event.rhost,
            "tty": event.tty,
            "client_ip": event.client_ip,
            "client_port": event.client_port,
            "server_ip": event.server_ip,
            "server_port": event.server_port,
            "auth_method": event.auth_method,
            "key_type": event.key_type,
            "fingerprint": event.fingerprint,
            "hook_version": event.hook_version,
            "dropped": event.dropped,
            "escaped": list(event.escaped),
            "truncated": list(event.truncated),
        },
        "enrichment": {
            "received": _stamp(enriched.received),
            "rdns": enriched.rdns,
            "rdns_verified": enriched.rdns_verified,
            "country": enriched.country,
            "country_name": enriched.country_name,
            "city": enriched.city,
            "network": enriched.network,
            "first_seen": {
                "address": seen.address,
                "network": seen.network,
                "country": seen.country,
                "key": seen.key,
            },
            "own_host": enriched.own_host,
            "findings": [{"kind": kind, "text": text} for kind, text in findings],
        },
        "decision": decision_data(decision),
    }
