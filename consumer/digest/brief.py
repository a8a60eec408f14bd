"""A digest as a channel-neutral notice: the mail for an address, a short summary for a
receiver (its counts, the busiest hosts, the dead letters), the same facts in both.

The receiver's notice is what ``core/notice.py`` describes: labels of ours, values made
visible; its ``data`` (a webhook's body) holds the window and the counts, following
``consumer/channels/webhook.v1.schema.json``. The full digest stays in the mail.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any, Final

from consumer.core.notice import Field, Notice
from consumer.digest.summary import Summary
from consumer.digest.view import DigestView

TOP_HOSTS: Final = 3


def digest_notice(
    summary: Summary, view: DigestView, key: str, *, mail: EmailMessage | None = None
) -> Notice:
    """The notice of one window's digest for ``summary.recipient``."""
    total = summary.total
    quiet = "all quiet" if summary.empty else f"{total} event{'' if total == 1 else 's'}"
    counts = [Field(label[:1].upper() + label[1:], str(count))
              for label, count in view.totals if count]  # fmt: skip
    busiest = ", ".join(f"{row.host} ({row.events})" for row in view.hosts[:TOP_HOSTS])
    fields = [
        Field("Window", f"{view.start} – {view.end} {view.zone}"),
        *counts,
        *([Field("Busiest hosts", busiest)] if busiest else []),
        *([Field("Dead letters", view.dead)] if view.dead else []),
        Field("Digest", view.key),
    ]
    return Notice(
        key=key,
        target=summary.recipient,
        type="loginwatch.digest",
        summary=f"Digest: {quiet}",
        headline=(Field("for", f"{view.start} – {view.end}"),),
        fields=tuple(fields),
        data=digest_data(summary),
        priority="low",
        tags=("digest",),
        mail=mail,
    )


def digest_data(summary: Summary) -> dict[str, Any]:
    """The webhook body's ``data`` for a digest: the window and its counts."""
    window = summary.window
    return {
        "window": {
            "key": window.key,
            "start": window.start.isoformat().replace("+00:00", "Z"),
            "end": window.end.isoformat().replace("+00:00", "Z"),
        },
        "recipient": summary.recipient,
        "total": summary.total,
        "kinds": dict(summary.kinds),
        "hosts": summary.hosts.total,
        "users": summary.users.total,
        "sources": summary.sources.total,
        "first_seen": summary.first_seen.total,
        "root": summary.root.total,
        "outside": summary.outside.total,
        "failures": summary.kinds.get("failure", 0),
        "kept": dict(summary.kept_counts),
        "dropped_events": summary.dropped_events,
        "dead": summary.dead,
    }
