"""Make and send one window's digests: exactly one per recipient, whatever crashes when.

``WindowSender`` is handed the scheduler's ``Lease`` when it is built: it renews the lease
before each claim and each send, and stops (``LeaseLost``) the moment it is gone. Per window
and recipient (``digest_send``), only the lease holder moves the state::

    open ──claim──▶ sending ──delivered?──yes──▶ sent          (crashed after recording)
                       │           no
                       └─ aggregate, render, SMTP ──▶ record delivery ──▶ sent

- A crash before the SMTP server accepted leaves ``sending`` and no delivery record: the
  next lease holder claims it again and sends (never zero).
- A crash after the delivery was recorded: the next holder finds the record and only marks
  the row ``sent`` (never two).
- A window whose digest cannot be made (its aggregation or rendering fails while the store
  itself answers) is tried ``ATTEMPTS`` times, then its rows are marked ``failed`` with
  the reason in the log: one bad window never blocks the windows after it, nor
  ``--send-now``. A store that does not answer is an outage, not the window's fault: that
  error goes up and the scheduler retries the same window after its backoff.
- A crash in the instant between the server's ``250`` and the record's commit cannot be told
  apart from a crash before the ``250`` (no protocol can; the worker's alerts have the same
  edge): the digest is sent again with the *same* Message-ID, derived from the window key
  and the recipient, which mail stores and clients use to fold the copy.

A route's receivers (``receiver:NAME``) get their digest as a short summary
(``digest/brief.py``) through the same ``send_once`` and the same rules; the resend of that
edge carries the same delivery id (a webhook's ``webhook-id``, ntfy's ``sequence_id``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from consumer.channels.base import Channel, send_once
from consumer.core import metrics
from consumer.core.notice import Notice
from consumer.core.routing import digest_recipients
from consumer.digest.aggregate import Aggregator, Rules, audiences, reading
from consumer.digest.brief import digest_notice
from consumer.digest.lease import Lease, LeaseLost
from consumer.digest.mail import DigestRenderer
from consumer.digest.summary import Summary
from consumer.digest.tables import DigestStore, State
from consumer.digest.view import Annotate, DigestView, build_view
from consumer.digest.windows import Schedule, Window, outside_hours
from consumer.lookups.geoip import GeoIp
from consumer.lookups.rdns import ReverseDns
from consumer.silences.rules import from_config
from consumer.store import Store
from schemas.config import Config
from schemas.errors import PermanentSendError, StoreError, TransientSendError
from schemas.receivers import reference

log = logging.getLogger("loginwatch.digest")

ATTEMPTS = 3  # tries (one per scheduler tick) to make a window's digests before it fails


def recipients(config: Config) -> tuple[str, ...]:
    """Everyone a non-ignore route names (lower-cased, sorted): each gets a digest."""
    return digest_recipients(config.route)


def annotator(config: Config) -> Annotate:
    """rDNS and GeoIP of a source address, at digest time, as ``[enrich]`` configures."""
    rdns = ReverseDns(timeout=config.enrich.dns_timeout) if config.enrich.dns else None
    geoip = GeoIp(config.enrich.geoip_db) if config.enrich.geoip_db else None

    def annotate(address: str) -> tuple[str | None, bool, str]:
        name, verified = rdns.lookup(address) if rdns else (None, False)
        place = geoip.lookup(address) if geoip else None
        if place is None:
            return name, verified, ""
        return (
            name,
            verified,
            ", ".join(p for p in (place.city, place.country_name or place.country) if p),
        )

    return annotate


@dataclass
class WindowSender:
    """Composes and sends each due window's digests, as the holder of ``lease``.

    ``sent_log``: the store whose sent log the worker writes too (check-before,
    record-after); ``dead_count``: the dead queue's depth now, None when unknown.
    """

    config: Config
    store: DigestStore
    sent_log: Store
    mailer: Channel  # every target's channel: mail, and each [receiver.NAME]
    renderer: DigestRenderer
    annotate: Annotate
    lease: Lease
    dead_count: Callable[[], int | None]
    checkpoint: Callable[[str], None] = lambda _name: None
    failures: dict[str, int] = field(default_factory=dict)  # window key -> failed tries

    def __post_init__(self) -> None:
        self.schedule = Schedule.from_config(self.config.digest)
        self.recipients = recipients(self.config)

    def rules(self, window: Window) -> Rules:
        digest = self.config.digest
        outside = outside_hours(window, self.schedule.zone, digest.working_hours,
                                digest.working_days)  # fmt: skip
        return Rules(
            top=digest.top,
            burst_failures=digest.burst_failures,
            burst_seconds=int(digest.burst_window.seconds),
            outside=tuple(outside),
            configured=tuple(from_config(i, s) for i, s in enumerate(self.config.silence)),
            quiet_after=self.config.hosts.quiet_after.seconds,
        )

    def summaries(
        self, window: Window, dead: int | None, recipients: Sequence[str] | None = None
    ) -> dict[str, Summary]:
        """Every recipient's summary of ``window`` (only ``recipients``' when given)."""
        aggregator = Aggregator(self.store.db, self.rules(window))
        found = audiences(self.store.db, window)
        return {
            r: replace(aggregator.summary(window, r, reading(r, found)), dead=dead)
            for r in (self.recipients if recipients is None else recipients)
        }

    def view(self, summary: Summary) -> DigestView:
        digest = self.config.digest
        rule = f"{digest.burst_failures} failures from one source within {digest.burst_window}"
        return build_view(summary, self.schedule.zone, self.annotate,
                          working_hours=digest.working_hours, burst_rule=rule)  # fmt: skip

    def send_window(self, window: Window, now: datetime) -> int:
        """Send ``window``'s digests not sent yet; how many went out.

        Raises:
            TransientSendError: the SMTP server is unreachable (rows stay ``sending``).
            LeaseLost: another scheduler took the lease over (rows stay ``sending``).
            StoreError: the store failed.
        """
        self.store.open_window(window, self.recipients, self.lease.now())
        pending = [r for r in self.recipients if self._claim(window, r)]
        if not pending:
            return 0
        self.checkpoint("after-claim")
        try:
            summaries = self.summaries(window, self.dead_count())
        except Exception as exc:  # any cause: one window must not block the rest
            self._cannot_make(window, pending, exc)
            return 0
        sent = 0
        for recipient in pending:
            sent += self._send_one(window, summaries[recipient], now)
        return sent

    def _cannot_make(self, window: Window, recipients: list[str], exc: Exception) -> None:
        """Count a failed try at ``window``'s digests; at ``ATTEMPTS``, mark them failed.

        Raises:
            StoreError: the store itself does not answer (an outage: retry later).
        """
        if isinstance(exc, StoreError) and not self.store.healthy():
            raise exc
        reason = f"{type(exc).__name__}: {exc}"[:500]
        tries = self.failures[window.key] = self.failures.get(window.key, 0) + 1
        if tries < ATTEMPTS:
            log.warning("digest %s: cannot be made (try %d of %d): %s", window.key, tries,
                        ATTEMPTS, reason)  # fmt: skip
            return
        for recipient in recipients:
            self.store.finish(window, recipient, State.FAILED, self.lease.now())
            log.error("digest %s for %s failed for good after %d tries: %s", window.key,
                      recipient, tries, reason)  # fmt: skip

    def _claim(self, window: Window, recipient: str) -> bool:
        wall = self.lease.now()
        if not self.store.claim(window, recipient, self.lease.owner, wall, wall - self.lease.ttl):
            return False
        # Renewed after the claim: whoever takes the lease over after us finds the claim
        # older than the lease, so it may take the row over (see DigestStore.claim).
        self._hold()
        return True

    def _hold(self) -> None:
        if not self.lease.renew():
            raise LeaseLost(f"{self.lease.owner} lost the scheduler lease")

    def _notice(self, summary: Summary, key: str, now: datetime) -> Notice:
        """The digest for its target: a mail for an address, a short summary for a receiver.

        Raises:
            PermanentSendError: a template failed, or the headers did not survive.
        """
        view = self.view(summary)
        to_mail = reference(summary.recipient) is None
        mail = self.renderer.render(view, now) if to_mail else None
        return digest_notice(summary, view, key, mail=mail)

    def _send_one(self, window: Window, summary: Summary, now: datetime) -> int:
        recipient, stamp = summary.recipient, self.lease.now()
        key = f"digest:{window.key}:{recipient}"
        if summary.empty and self.config.digest.empty == "skip":
            self.store.finish(window, recipient, State.SKIPPED, stamp)
            log.info("digest %s for %s: empty window, skipped", window.key, recipient)
            return 0
        try:
            # Rendered before the send, the lease renewed just before it: a scheduler that
            # lost its lease while aggregating must not send.
            sent = send_once(self.sent_log, self.mailer, key,
                             lambda: self._notice(summary, key, now), now, before=self._hold,
                             between=lambda: self.checkpoint("after-smtp"))  # fmt: skip
        except PermanentSendError as exc:
            self.store.finish(window, recipient, State.FAILED, stamp)
            log.error("digest %s for %s failed for good: %s", window.key, recipient, exc)
            return 0
        except TransientSendError:
            raise
        if not sent:  # check-before: it went out, the mark did not
            self.store.finish(window, recipient, State.SENT, stamp)
            log.info("digest %s for %s: already sent, marked", window.key, recipient)
            return 0
        self.checkpoint("after-record")
        self.store.finish(window, recipient, State.SENT, stamp)
        metrics.digest_window_sent()
        log.info("digest %s for %s: sent (%d events)", window.key, recipient, summary.total)
        return 1
