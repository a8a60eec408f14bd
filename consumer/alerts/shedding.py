"""Shedding per speaker: past a budget, a flooding broker user's junk and failed logins are
acked and counted, not processed one by one. Pure bookkeeping; the clock is passed in.

A *speaker* is the broker user behind a message: its ``user_id`` (RabbitMQ checks it), or
for a message without one, the user its routing key begins with (its topic permission
makes the broker check that too). The central user is never shed: it is ours.

Each speaker has a budget of bad outcomes (``[worker] speaker_budget`` within
``speaker_window``): messages refused (undecodable, oversized, a host it may not speak
for) and events the policy folded (flood control). Past the budget the speaker *floods*:

- a refused message is acked and counted by its reason; only the first
  ``dead_per_speaker`` of the flood still go to the dead queue with their reason, so one
  host's junk cannot push the other hosts' real dead letters out of it;
- a failed login is acked and counted per source (``FailureTally``, written to the store,
  where the failed-passwords-before-a-login count will read it);
- everything else (a successful login, a logout, what the future adds: heartbeats) is
  still decided, each one: by the policy on the flood counts, with nothing written and
  nothing logged one by one (consumer/alerts/speakers.py); one whose decision mails
  someone goes the whole way. Shedding never drops a login.

Every shed message counts as bad too, so a flood lasts while it goes on, and ends once a
window holds fewer bad outcomes than the budget. Log lines about a speaker are rate-limited
to one per ``LOG_EVERY_S`` with the counts since the last (``lines``); a flood that starts
is reported once (``started``: the worker raises the "host is flooding" system alert).
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

from schemas.event import LoginEvent

LOG_EVERY_S: Final = 60.0
SLOT_S: Final = 1.0  # bad outcomes are counted per second of the window
REASONS_KEPT: Final = 5  # distinct refusal reasons a flood's log line names


class Kind(enum.Enum):
    REFUSED = "refused"  # undecodable, or a host this speaker may not speak for
    FAILURE = "failure"  # a failed login
    OTHER = "other"  # anything else: decided as always


@dataclass(frozen=True)
class Message:
    """What shedding needs to know of one delivery (the worker decodes it to say)."""

    speaker: str
    kind: Kind
    reason: str = ""  # refused: why
    host: str = ""  # failure: on which host
    source: str = ""  # failure: from where
    event: LoginEvent | None = None  # other: the event, as decoded (and checked)


@dataclass
class Flood:
    """One flood of one speaker, from its start until a window is calm again; ``refused``,
    ``folded``, ``first_reasons``: what spent its budget."""

    speaker: str
    started: float
    refused: int = 0
    folded: int = 0
    first_reasons: tuple[str, ...] = ()
    dead: int = 0  # refused messages of this flood that went to the dead queue
    shed: Counter[str] = field(default_factory=Counter)  # what → count, the whole flood
    since_line: Counter[str] = field(default_factory=Counter)  # since the last log line
    reasons: Counter[str] = field(default_factory=Counter)  # refusal reasons, a few kept
    last_line: float = 0.0

    def count(self, what: str, reason: str = "") -> None:
        self.shed[what] += 1
        self.since_line[what] += 1
        if reason and (reason in self.reasons or len(self.reasons) < REASONS_KEPT):
            self.reasons[reason] += 1


@dataclass
class _Speaker:
    slots: deque[list[float]] = field(default_factory=deque)  # [slot start, bad outcomes]
    bad: int = 0  # the sum over slots
    flood: Flood | None = None
    # Since the speaker was last calm (for the "host is flooding" alert).
    refused: int = 0
    folded: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class Shedder:
    """The speakers' budgets of one worker (each worker sheds on its own counts)."""

    def __init__(self, budget: int, window: float, dead_max: int, exempt: str | None) -> None:
        self.budget = budget
        self.window = window
        self.dead_max = dead_max
        self.exempt = exempt
        self._speakers: dict[str, _Speaker] = {}
        self._started: list[Flood] = []

    def shed(self, message: Message, now: float) -> str | None:
        """Why ``message`` is acked and counted instead of processed; None: process it.

        A refused message spends its speaker's budget here, as it is seen (it will be
        dead-lettered unless shed), so a flood starts at the very message that spends the
        budget, not a batch later."""
        if message.speaker == self.exempt:
            return None
        state = self._speakers.get(message.speaker)
        if message.kind is Kind.REFUSED and (state is None or state.flood is None):
            self._bad(message.speaker, now, refused=message.reason)
            return None
        flood = state.flood if state is not None else None
        if state is None or flood is None or message.kind is Kind.OTHER:
            return None
        if message.kind is Kind.REFUSED and flood.dead < self.dead_max:
            flood.dead += 1  # still dead-lettered, with its reason
            return None
        self._add(state, now)
        if message.kind is Kind.REFUSED:
            flood.count("refused", message.reason)
            return f"shed: refused while {message.speaker} floods ({message.reason})"
        flood.count("failure")
        return f"shed: failed login counted while {message.speaker} floods"

    def folded(self, speaker: str, now: float) -> None:
        """Flood control folded a message of ``speaker`` (decided, mailed nobody)."""
        if speaker != self.exempt:
            self._bad(speaker, now, refused=None)

    def _bad(self, speaker: str, now: float, *, refused: str | None) -> None:
        """One bad outcome of ``speaker``: ``refused`` (why), else folded. Starts a flood
        when the budget is spent."""
        state = self._speakers.setdefault(speaker, _Speaker())
        self._add(state, now)
        if refused:
            state.refused += 1
            if refused in state.reasons or len(state.reasons) < REASONS_KEPT:
                state.reasons[refused] += 1
        else:
            state.folded += 1
        if state.flood is None and state.bad >= self.budget:
            reasons = tuple(r for r, _ in state.reasons.most_common(REASONS_KEPT))
            state.flood = Flood(speaker, now, state.refused, state.folded, reasons,
                                last_line=now)  # fmt: skip
            self._started.append(state.flood)

    def decided(self, speaker: str) -> None:
        """A message of ``speaker`` was decided, not shed: while it floods, its decisions
        that mail nobody are not logged one by one, so its line counts them."""
        state = self._speakers.get(speaker)
        if state is not None and state.flood is not None:
            state.flood.count("decided")

    def started(self) -> list[Flood]:
        """The floods that started since the last call."""
        started, self._started = self._started, []
        return started

    def flooding(self) -> list[str]:
        return [s for s, state in self._speakers.items() if state.flood is not None]

    def lines(self, now: float) -> list[str]:
        """The log lines due at ``now``: at most one per flooding speaker per ``LOG_EVERY_S``
        (with its counts since the last), and one when a flood ends. Forgets speakers whose
        window is empty, so memory follows the speakers of the last window."""
        said = []
        for speaker, state in list(self._speakers.items()):
            self._expire(state, now)
            flood = state.flood
            if flood is not None and state.bad < self.budget:
                said.append(_ended(flood, now))
                state.flood = None
            elif flood is not None and flood.since_line and now - flood.last_line >= LOG_EVERY_S:
                said.append(_progress(flood))
                flood.since_line.clear()
                flood.last_line = now
            if state.flood is None and not state.slots:
                del self._speakers[speaker]  # calm: its counts start again
        return said

    def _add(self, state: _Speaker, now: float) -> None:
        self._expire(state, now)
        start = now - now % SLOT_S
        if state.slots and state.slots[-1][0] == start:
            state.slots[-1][1] += 1
        else:
            state.slots.append([start, 1])
        state.bad += 1

    def _expire(self, state: _Speaker, now: float) -> None:
        while state.slots and state.slots[0][0] <= now - self.window:
            state.bad -= int(state.slots.popleft()[1])


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[what]} {what}" for what in ("refused", "failure") if counts[what])


def _decided(counts: Counter[str]) -> str:
    return f"; decided {counts['decided']} of its other messages" if counts["decided"] else ""


def _progress(flood: Flood) -> str:
    reasons = "; ".join(f"{n}x {r}" for r, n in flood.reasons.most_common(3))
    why = f" (refused: {reasons})" if reasons else ""
    shed = _counts(flood.since_line) or "nothing"
    return (f"{flood.speaker} floods: shed {shed} since the last line{why}"
            f"{_decided(flood.since_line)}; {flood.dead} of its refused messages went to the"
            " dead queue")  # fmt: skip


def _ended(flood: Flood, now: float) -> str:
    return (f"{flood.speaker} no longer floods: shed {_counts(flood.shed) or 'nothing'} in"
            f" {now - flood.started:.0f} s{_decided(flood.shed)}; {flood.dead} refused"
            " message(s) went to the dead queue")  # fmt: skip
