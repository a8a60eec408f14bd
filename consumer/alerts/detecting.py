"""The detections of one batch: what the store must read for them, and each event's findings.

``Detecting(config, quota)`` makes, per batch, a ``BatchDetections`` over the batch's events
(in order). Its ``reads`` go with the batch's first round trip (``Store.batch``); ``found``
then gives each event, in order, what the pure functions of ``consumer/detect/`` decided:

- a login's source failed within ``[detect] brute_window`` (``brute``): the counts of this
  host and the fleet as the store holds them, plus the failed logins earlier in the same
  batch (the worker writes what it counted before a batch with a login in it:
  ``consumer/alerts/worker.py``);
- a login with GeoIP coordinates too far from the user's previous one for the time
  between them (``travel``): the previous place is the store's, or an earlier login of the
  same batch's; the new place is written with the batch's next round trip, while the
  host is within its first-seen quota;
- a su or sudo (``escalation``) with the login of its session: by its links (the audit
  session, the sshd process) from the store's ``login_link`` or an earlier login of the
  batch; each login's links are written with the batch's next round trip (same quota).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from consumer.alerts.hopping import JumpHosts
from consumer.core.detections import Origin, Session, Spot
from consumer.core.enriched import Enriched
from consumer.detect.brute import brute_force, source_of
from consumer.detect.escalation import (
    ESCALATION_KINDS,
    LOGIN_KINDS,
    escalation,
    link_words,
    links,
    login_of_end,
    origin,
)
from consumer.detect.travel import impossible
from consumer.store import StoreBatch, places, sessions
from consumer.store import failures as failure_counts
from consumer.store.backends import Statement
from consumer.store.quota import HostQuota, day_of, quota_host
from consumer.store.text import sql_text
from schemas.config import Config
from schemas.event import LoginEvent

LOGIN = "login"
# A logout's record and its login's event may differ by this much in when it began.
END_SLACK_S = 3.0


class Detecting:
    """The detections' settings of one config, and the quota new state is written under."""

    def __init__(self, config: Config, quota: HostQuota | None) -> None:
        self.brute_window = config.detect.brute_window.seconds
        self.brute_min = config.detect.brute_min
        self.max_kmh = config.enrich.max_kmh
        self.quota = quota
        self.jumps = JumpHosts(config)  # hops: found before first-seen (hopping.py)

    def batch(self, placed: Sequence[Enriched], now: datetime) -> BatchDetections:
        return BatchDetections(self, placed, now)


class BatchDetections:
    """One batch's detections (see the module): ``reads``, then ``found`` per event in order."""

    def __init__(self, settings: Detecting, placed: Sequence[Enriched], now: datetime) -> None:
        self.settings = settings
        self.now = now
        self._failed: Counter[tuple[str, str]] = Counter()  # earlier in the batch
        self._counts: Counter[tuple[str, str]] = Counter()  # (source, host) → the store's
        self._spots: dict[str, Spot | None] = {}
        self._logins: dict[tuple[str, str], Origin] = {}  # (host, link) → login
        self._ends: dict[int, list[Origin]] = {}  # a logout's index → its user's logins then
        self._index = 0
        self._asked = self._questions(placed)
        jump = settings.jumps.refresh_read()
        self._jump: list[Statement] = [] if jump is None else [jump]
        self._writes = self._written(placed)

    def _questions(self, placed: Sequence[Enriched]) -> list[tuple[str, object, Statement]]:
        """The batch's reads, one statement each kind (and one per logout): the failures
        of its logins' sources, its users' places, its sessions' logins."""
        since = self.now - timedelta(seconds=self.settings.brute_window)
        slack = timedelta(seconds=END_SLACK_S)
        # Dicts as ordered sets: each source, user and (host, link) asked once.
        sources: dict[str, None] = {}
        users: dict[str, None] = {}
        pairs: dict[tuple[str, str], None] = {}
        asked: list[tuple[str, object, Statement]] = []
        for index, enriched in enumerate(placed):
            event = enriched.event
            if enriched.session is not None and enriched.session.login_at is not None:
                began = enriched.session.login_at
                asked.append(("end", index, sessions.by_user_statement(
                    event.user, began - slack, began + slack)))  # fmt: skip
            if event.kind in ESCALATION_KINDS or enriched.session is not None:
                for link in links(event.audit_session, event.session_pid, event.session_start):
                    pairs[(event.host, link)] = None
            if event.kind == LOGIN and (source := source_of(event.client_ip, event.rhost)):
                sources[source] = None
            if event.kind == LOGIN and enriched.latitude is not None:
                users[event.user] = None
        if sources:
            asked.append(("failures", None, failure_counts.counts_statement(list(sources), since)))
        if users:
            asked.append(("places", None, places.read_statement(list(users))))
        if pairs:
            asked.append(("links", None, sessions.read_statement(list(pairs))))
        return asked

    @property
    def reads(self) -> list[Statement]:
        """What the batch's first round trip reads for the detections, then the state its
        logins leave (no rows)."""
        return [*(statement for _, _, statement in self._asked), *self._jump, *self._writes]

    def load(self, work: StoreBatch) -> None:
        """The rows the batch's first round trip read for ``reads``."""
        rows = [list(found) for found in work.read]
        rows += [[] for _ in range(len(self.reads) - len(rows))]
        for (what, index, _), found in zip(self._asked, rows, strict=False):
            if what == "failures":
                for source, host, count in found:
                    self._counts[(str(source), str(host))] += int(str(count))
            elif what == "places":
                self._spots.update(places.spots_of(found))
            elif what == "links":
                for login in sessions.origins_of(found):
                    link = login.linked_by
                    self._logins[(login.host, link)] = msgspec.structs.replace(
                        login, linked_by=link_words(link))  # fmt: skip
            elif what == "end":
                self._ends[int(str(index))] = sessions.origins_of(found)
        if self._jump:
            self.settings.jumps.load(rows[len(self._asked)])

    def found(self, enriched: Enriched) -> Enriched:
        """``enriched`` (the batch's next event) with what the detections found (the state
        it leaves went with the batch's first round trip: ``reads``)."""
        index, self._index = self._index, self._index + 1
        event = enriched.event
        source = source_of(event.client_ip, event.rhost)
        if event.outcome.name == "FAILURE":
            self._failed[(event.host, source)] += 1
            return enriched
        if enriched.session is not None:
            return self._ended(index, enriched)
        if event.kind in ESCALATION_KINDS:
            return msgspec.structs.replace(
                enriched, escalation=escalation(event.kind, event.user, self._origin(event))
            )
        if event.kind in LOGIN_KINDS:
            self._remember(enriched)
        if event.kind != LOGIN:
            return enriched
        if source:
            earlier = self._failed[(event.host, source)]
            elsewhere = sum(n for (_, s), n in self._failed.items() if s == source)
            stored = sum(n for (s, _), n in self._counts.items() if s == sql_text(source))
            brute = brute_force(self._counts[(sql_text(source), sql_text(event.host))] + earlier,
                                stored + elsewhere, window=self.settings.brute_window,
                                minimum=self.settings.brute_min)  # fmt: skip
            enriched = msgspec.structs.replace(enriched, brute=brute)
        if enriched.latitude is not None and enriched.longitude is not None:
            enriched = self._travel(enriched)
        return enriched

    def _origin(self, event: LoginEvent) -> Origin | None:
        """The login of ``event``'s session by its links (the store's, or the batch's)."""
        asked = links(event.audit_session, event.session_pid, event.session_start)
        return origin(asked, {link: self._logins[(event.host, link)] for link in asked
                              if (event.host, link) in self._logins})  # fmt: skip

    def _ended(self, index: int, enriched: Enriched) -> Enriched:
        """A logout with its login: by the audit session, else the user's login on this
        host that began when the record says (within ``END_SLACK_S``), from the same
        address."""
        event, session = enriched.event, enriched.session
        assert session is not None
        found = self._origin(event)
        if found is None and index in self._ends and session.login_at is not None:
            found = login_of_end(self._ends[index], host=event.host, source=event.client_ip,
                                 began=session.login_at, slack=END_SLACK_S,
                                 pid=event.session_pid)  # fmt: skip
            if found is not None:
                by_pid = event.session_pid and found.linked_by.startswith(
                    f"pid:{event.session_pid}:")  # fmt: skip
                words = (link_words(found.linked_by) if by_pid
                         else "the login's time and address")  # fmt: skip
                found = msgspec.structs.replace(found, linked_by=words)
        return msgspec.structs.replace(enriched, session=session_of(session, found))

    def _within_quota(self, host: str) -> bool:
        """Whether ``host`` may add state: a login makes first-seen rows too, so a host
        within its first-seen quota adds at most that many logins' rows."""
        quota = self.settings.quota
        return quota is None or not quota.full(quota_host(host), day_of(self.now))

    def _remember(self, enriched: Enriched) -> None:
        """A login's links, for the su, sudo and logout of its session later in the batch
        (the store has them from the batch's first round trip: ``_written``)."""
        event = enriched.event
        if not self._within_quota(event.host):
            return
        asked, login = login_links(enriched)
        for link in asked:
            self._logins[(event.host, link)] = msgspec.structs.replace(
                login, linked_by=link_words(link)
            )

    def _travel(self, enriched: Enriched) -> Enriched:
        event = enriched.event
        spot = spot_of(enriched)
        before = self._spots.get(sql_text(event.user))
        travel = impossible(before, spot, max_kmh=self.settings.max_kmh)
        if self._within_quota(event.host) and (before is None or spot.at >= before.at):
            self._spots[sql_text(event.user)] = spot
        return msgspec.structs.replace(enriched, travel=travel)

    def _written(self, placed: Sequence[Enriched]) -> list[Statement]:
        """The state the batch's logins leave, written in its first round trip after the
        reads (so the reads see the store as it was): each login's links, and each user's
        place, while the host is within its first-seen quota; one statement each."""
        logins: list[tuple[str, Origin]] = []
        spots: list[tuple[str, Spot]] = []
        for enriched in placed:
            event = enriched.event
            if event.kind not in LOGIN_KINDS or not self._within_quota(event.host):
                continue
            asked, login = login_links(enriched)
            logins += [(link, login) for link in asked]
            if event.kind == LOGIN and enriched.latitude is not None:
                spots.append((event.user, spot_of(enriched)))
        writes = [sessions.write_statement(logins, self.now)] if logins else []
        return writes + ([places.write_statement(spots, self.now)] if spots else [])


def login_links(enriched: Enriched) -> tuple[tuple[str, ...], Origin]:
    """A login's links (one of its own when it has none: its logout finds it by time and
    address), and the login as they name it; a hop's keeps its original client."""
    event = enriched.event
    asked = links(event.audit_session, event.session_pid, event.session_start)
    source = enriched.hop.client if enriched.hop else event.client_ip or event.rhost
    login = Origin(event_id=event.id_hex, user=event.user, host=event.host,
                   service=event.service, source=source, fingerprint=event.fingerprint,
                   at=event.time, linked_by="")  # fmt: skip
    return asked or (f"event:{event.id_hex}",), login


def spot_of(enriched: Enriched) -> Spot:
    """Where and when a login with GeoIP coordinates was."""
    event = enriched.event
    place = ", ".join(p for p in (enriched.city, enriched.country) if p)
    return Spot(latitude=enriched.latitude or 0.0, longitude=enriched.longitude or 0.0,
                radius=enriched.radius, at=event.time, host=event.host,
                address=event.client_ip, network=enriched.network or "", place=place)  # fmt: skip


def session_of(session: Session, found: Origin | None) -> Session:
    """``session`` with its login; a record without its start takes the login's."""
    if found is None:
        return session
    seconds = session.seconds
    return msgspec.structs.replace(session, origin=found, seconds=seconds)
