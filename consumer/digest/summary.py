"""The frozen result of aggregating one window for one recipient (aggregate → render)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from consumer.digest.windows import Window
from consumer.questions.table import Question
from consumer.silences.rules import Rule


@dataclass(frozen=True)
class HostRow:
    host: str
    events: int
    logins: int
    failures: int
    root: int
    dropped: int
    cells: tuple[int, ...]  # events per heat-map column


@dataclass(frozen=True)
class UserRow:
    user: str
    events: int
    logins: int
    failures: int
    hosts: int


@dataclass(frozen=True)
class SourceRow:
    address: str
    events: int
    users: int
    hosts: int


@dataclass(frozen=True)
class LoginRow:
    at: datetime
    host: str
    user: str
    source: str
    answer: str = ""  # "yes"/"no": what the user said to "was this you?"


@dataclass(frozen=True)
class BurstRow:
    address: str
    bursts: int  # failures that completed a burst (N within M minutes)
    first: datetime  # when the first burst was complete


@dataclass(frozen=True)
class KeptRow:
    action: str  # silenced, folded, burst
    at: datetime
    host: str
    user: str
    source: str


@dataclass(frozen=True)
class ClockRow:
    """A host whose events arrived more than ``clock.SKEW`` away from the time it gave."""

    host: str
    behind: int  # the most its time was behind the arrival (seconds, <= 0 when it was)
    ahead: int  # the most its time was ahead (seconds, >= 0 when it was)
    events: int  # its events that were off


@dataclass(frozen=True)
class QuotaRow:
    """A host past a store quota (consumer/store/quota.py) on the days of the window."""

    host: str
    events: int  # events counted, not stored
    first_seen: int  # first-seen rows not recorded


@dataclass(frozen=True)
class Growth:
    """A host that added most of the store's rows on the days of the window."""

    host: str
    rows: int
    total: int  # every host's rows
    hosts: int  # hosts that added rows


@dataclass(frozen=True)
class QuietRow:
    """A host that stopped reporting (consumer/detect/quiet.py): since when, and whether it
    said goodbye first (stopped) or not (gone)."""

    host: str
    since: datetime
    stopped: bool


@dataclass(frozen=True)
class SessionRow:
    """A session that ended in the window: when, where, whose, how long (seconds)."""

    at: datetime
    host: str
    user: str
    seconds: float


T = TypeVar("T")


@dataclass(frozen=True)
class Listing(Generic[T]):
    """The first rows of a list and how many there are in all."""

    rows: tuple[T, ...] = ()
    total: int = 0

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.rows))


@dataclass(frozen=True)
class Summary:
    window: Window
    recipient: str
    kinds: dict[str, int] = field(default_factory=dict)  # events per kind
    hosts: Listing[HostRow] = Listing()
    columns: tuple[datetime, ...] = ()  # heat-map column starts
    users: Listing[UserRow] = Listing()
    sources: Listing[SourceRow] = Listing()
    first_seen: Listing[LoginRow] = Listing()
    root: Listing[LoginRow] = Listing()
    outside: Listing[LoginRow] = Listing()
    failure_sources: Listing[SourceRow] = Listing()
    bursts: Listing[BurstRow] = Listing()
    kept_counts: dict[str, int] = field(default_factory=dict)
    kept: Listing[KeptRow] = Listing()
    # (host, events its spool dropped), the first ``top``; and the sum over every host.
    dropped: Listing[tuple[str, int]] = Listing()
    dropped_events: int = 0
    dead: int | None = None  # messages in the dead queue when the digest was made
    clocks: Listing[ClockRow] = Listing()
    over_cap: Listing[QuotaRow] = Listing()
    dominant: Growth | None = None
    # Silences and acks in force during the window (the config's first), who made them;
    # the "was this you?" questions asked in it, answered or not.
    silences: Listing[Rule] = Listing()
    questions: Listing[Question] = Listing()
    # Hosts quiet at the window's end (every digest, until they report again); failure
    # sources no login ever came from; sessions that ended, with their lengths.
    quiet: Listing[QuietRow] = Listing()
    new_failure_sources: int = 0
    sessions: Listing[SessionRow] = Listing()

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    @property
    def empty(self) -> bool:
        """Nothing to report: no event, no loss, nothing dead."""
        return (self.total == 0 and not self.dropped_events and not self.dead
                and not self.quiet.total)  # fmt: skip
