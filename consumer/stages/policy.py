"""Policy stage: who gets mail for an event, how, and why — a pure function of its inputs.

``Policy(config).decide(enriched, state, now)`` returns one ``Decision`` per recipient:

1. Routes (``[[route]]``, all-matches, ``consumer/core/routing.py``): each recipient is decided
   by the first matching route that names it. No match: one IGNORE.
2. A route in ``digest`` or ``ignore`` mode decides at once.
3. An ``immediate`` recipient under an active ``[[silence]]`` is SILENCED (digest only).
4. Flood control, two budgets per recipient within ``flood_window``. The *host* budget
   counts mails about one host and one kind of event: a recipient who already got
   ``flood_max`` of them gets one BURST mail for that host and kind, after which its further
   events of that kind are FOLDED (digest only) until the window has room again. The
   *fleet* budget counts mails about one kind from all hosts together, and does the same at
   ``flood_max_fleet``. Failed passwords therefore never fold a login, and one host adds at
   most ``flood_max + 1`` mails to a fleet budget, so it cannot fold another host's alerts
   (the config requires ``flood_max_fleet > flood_max + 1``); only many hosts flooding at
   once (or one relay speaking for many host names) reach the fleet cap. A login that its
   host's own broker user reported (``Enriched.own_host``) is never folded by the fleet cap,
   only by its host's budget: otherwise a relay, the central user or five compromised hosts
   could flood 55 fake logins and hide a real one on any other host.

Silences match their globs the way routes do (``routing.globs_match``): the config's
``[[silence]]`` and the run-time silences and acks of the store alike
(``consumer/silences/rules.py``), which the pipeline reads at an interval and passes in.

System alerts (``consumer/core/system.py``: a host flooding, a login dropped) are decided
by ``decide_system`` the same way, through ``routing.system_routes``: a route that names
the system kind in ``kinds``, else every ``immediate`` route; a silence that names the kind
(or the host, with no user, source or key matchers); then flood control on the alert's own
kind, a budget of its own that logins never spend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from consumer.core.clock import utc
from consumer.core.decisions import Action, Budget, Decision, PolicyState
from consumer.core.display import quoted, visible
from consumer.core.enriched import Enriched
from consumer.core.routing import first_routes, globs_match, system_routes
from consumer.core.system import SystemAlert
from consumer.detect import words
from consumer.detect.escalation import ESCALATION_KINDS, escalated_to_root
from consumer.silences.rules import ACK, CONFIG, Rule, first_match, from_config
from schemas.config import Config, Route
from schemas.event import LoginEvent


class Policy:
    """The routing, silence and flood rules of one config (immutable)."""

    def __init__(self, config: Config) -> None:
        self.routes = config.route
        self.silences = tuple(from_config(i, s) for i, s in enumerate(config.silence))
        self.flood_max = config.policy.flood_max
        self.flood_max_fleet = config.policy.fleet_max
        self.flood_window = config.policy.flood_window.seconds

    def decide(
        self,
        enriched: Enriched,
        state: PolicyState,
        now: datetime,
        *,
        silences: Sequence[Rule] | None = None,
    ) -> tuple[Decision, ...]:
        """One decision per recipient; pure (the clock, the flood counts and the silences
        in force are inputs). ``silences``: the config's and the store's (``SilenceBook``);
        None: the config's alone."""
        event = enriched.event
        rules = self.silences if silences is None else silences
        chosen = first_routes(self.routes, event)
        if not chosen:
            return (Decision(action=Action.IGNORE, reason=f"no route matches {describe(event)}"),)
        return tuple(
            self._for_recipient(
                enriched,
                recipient,
                index=index,
                route=route,
                state=state,
                now=utc(now),
                silences=rules,
            )
            for recipient, (index, route) in chosen.items()
        )

    def _for_recipient(
        self,
        enriched: Enriched,
        recipient: str,
        *,
        index: int,
        route: Route,
        state: PolicyState,
        now: datetime,
        silences: Sequence[Rule] = (),
    ) -> Decision:
        event = enriched.event
        decision = _Decide(recipient, index)
        matched = f"route #{index + 1} ({route_summary(route)}) matches {describe(event)}"
        if route.mode == "ignore":
            return decision(Action.IGNORE, f"{matched}; mode ignore")
        if route.mode == "digest":
            return decision(Action.DIGEST, f"{matched}; mode digest")
        if (
            route.escalation_only
            and event.kind in ESCALATION_KINDS
            and not escalated_to_root(enriched.escalation)
        ):
            return decision(Action.DIGEST, f"{matched}; escalation_only: not to root")
        silence = first_match(silences, event, recipient, now)
        if silence is not None:
            return decision(Action.SILENCED, f"{matched}; {silenced_by(silence)}")
        if enriched.brute is not None:
            # The alert that matters most after a brute force: no flood budget folds it.
            return decision(
                Action.IMMEDIATE,
                f"{matched}; never folded: login {words.brute(enriched.brute)}",
                state.count(recipient, event.host, event.kind).sent,
            )
        return self._flood(decision, matched, state, event.host, event.kind,
                           login=enriched.own_host and event.kind == "login")  # fmt: skip

    def _flood(
        self,
        decision: _Decide,
        matched: str,
        state: PolicyState,
        host: str,
        kind: str,
        *,
        login: bool,
    ) -> Decision:
        """Flood control for one recipient of an event (or system alert) of ``kind`` on
        ``host``; ``login``: a login its host's own user reported, which the fleet budget
        never folds."""
        recipient = decision.recipient
        own = state.count(recipient, host, kind)
        fleet = state.fleet_count(recipient, kind)
        if own.sent >= self.flood_max:
            budget, count = Budget.HOST, own
            about = f"{kind} alerts about host {quoted(host)}"
        elif fleet.sent >= self.flood_max_fleet and not login:
            # A login its host's own broker user reported is never folded by the fleet
            # budget: a relay (or the central user, or five hosts) flooding under many
            # names would otherwise hide a real login on every other host.
            budget, count = Budget.FLEET, fleet
            about = f"{kind} alerts from all hosts"
        else:
            return decision(Action.IMMEDIATE, matched, own.sent)
        limit = f"{count.sent} {about} within {_duration(self.flood_window)}"
        if not count.burst_sent:
            return decision(Action.BURST, f"{matched}; flood control: {limit}", count.sent, budget)
        return decision(Action.FOLDED, f"{matched}; folded into the digest: {limit}", count.sent)

    def decide_system(
        self,
        alert: SystemAlert,
        state: PolicyState,
        now: datetime,
        *,
        silences: Sequence[Rule] | None = None,
    ) -> tuple[Decision, ...]:
        """One decision per recipient of a system alert; pure, as ``decide``."""
        rules = self.silences if silences is None else silences
        about = f"{alert.kind} about host {quoted(alert.host)}"
        chosen = system_routes(self.routes, alert.kind, alert.host)
        if not chosen:
            return (Decision(action=Action.IGNORE, reason=f"no route for {about}"),)
        named = any(r.kinds and globs_match(r.kinds, alert.kind) for r in self.routes)
        decided = []
        for recipient, (index, route) in chosen.items():
            decision = _Decide(recipient, index)
            how = "names its kind" if named else "is immediate (no route names its kind)"
            matched = f"route #{index + 1} ({route_summary(route)}) {how}: {about}"
            if route.mode != "immediate":
                decided.append(decision(_MODES[route.mode], f"{matched}; mode {route.mode}"))
                continue
            silence = system_silence(rules, alert, recipient, utc(now))
            if silence is not None:
                decided.append(decision(Action.SILENCED, f"{matched}; {silenced_by(silence)}"))
                continue
            decided.append(self._flood(decision, matched, state, alert.host, alert.kind,
                                       login=False))  # fmt: skip
        return tuple(decided)


_MODES = {"ignore": Action.IGNORE, "digest": Action.DIGEST}


class _Decide:
    """Makes the decisions of one recipient by one route."""

    def __init__(self, recipient: str, route: int) -> None:
        self.recipient = recipient
        self.route = route

    def __call__(
        self, action: Action, reason: str, sent: int = 0, burst: Budget | None = None
    ) -> Decision:
        return Decision(action=action, reason=reason, recipient=self.recipient,
                        route=self.route, sent=sent, burst=burst)  # fmt: skip


def system_silence(
    rules: Sequence[Rule], alert: SystemAlert, recipient: str, now: datetime
) -> Rule | None:
    """The first silence (or ack) in force that covers a system alert: its kinds or hosts
    match, and it has no user, source or key matchers (a system alert has none of them)."""
    for rule in rules:
        if (
            not rule.in_force(now)
            or rule.users
            or rule.sources
            or rule.fingerprints
            or rule.services
        ):
            continue
        if rule.to and recipient.lower() not in (r.lower() for r in rule.to):
            continue
        if globs_match(rule.hosts, alert.host.lower(), fold=True) and globs_match(
            rule.kinds, alert.kind
        ):
            return rule
    return None


def silenced_by(rule: Rule) -> str:
    """``silenced until 2026-05-01T10:00+00:00; CHG-42`` for a ``[[silence]]``; a run-time
    rule adds who made it and its id: ``acknowledged until … by "alice" (ack 3f2a…); …``."""
    what = "acknowledged" if rule.kind == ACK else "silenced"
    until = rule.until.isoformat(timespec="minutes")
    made = "" if rule.origin == CONFIG else f" by {quoted(rule.created_by)} ({rule.kind} {rule.id})"
    why = f"; {visible(rule.comment, 200)}" if rule.comment else ""
    return f"{what} until {until}{made}{why}"


def describe(event: LoginEvent) -> str:
    """``login of user "alice" on host "web1"``, the hostile parts quoted and made visible."""
    return f"{event.kind} of user {quoted(event.user)} on host {quoted(event.host)}"


def route_summary(route: Route) -> str:
    parts = [
        f"{name}={','.join(globs)}"
        for name, globs in (("hosts", route.hosts), ("users", route.users), ("kinds", route.kinds))
        if globs
    ]
    return " ".join(parts) or "everything"


def _duration(secs: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{secs:g}s"
