"""Policy stage: who gets mail for an event, how, and why — a pure function of its inputs.

``Policy(config).decide(enriched, state, now)`` returns one ``Decision`` per recipient:

1. Routes (``[[route]]``, all-matches, ``consumer/routing.py``): each recipient is decided
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

Silences match their globs the way routes do (``routing.globs_match``).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from consumer.clock import utc
from consumer.decisions import Action, Budget, Decision, PolicyState
from consumer.display import quoted
from consumer.enriched import Enriched
from consumer.routing import first_routes, globs_match
from schemas.config import Config, Route, Silence
from schemas.event import LoginEvent


class Policy:
    """The routing, silence and flood rules of one config (immutable)."""

    def __init__(self, config: Config) -> None:
        self.routes = config.route
        self.silences = config.silence
        self.flood_max = config.policy.flood_max
        self.flood_max_fleet = config.policy.fleet_max
        self.flood_window = config.policy.flood_window.seconds

    def decide(self, enriched: Enriched, state: PolicyState, now: datetime) -> tuple[Decision, ...]:
        """One decision per recipient; pure (the clock and the flood counts are inputs)."""
        event = enriched.event
        chosen = first_routes(self.routes, event)
        if not chosen:
            return (Decision(action=Action.IGNORE, reason=f"no route matches {describe(event)}"),)
        return tuple(
            self._for_recipient(
                event,
                recipient,
                index=index,
                route=route,
                state=state,
                now=utc(now),
                own_host=enriched.own_host,
            )
            for recipient, (index, route) in chosen.items()
        )

    def _for_recipient(
        self,
        event: LoginEvent,
        recipient: str,
        *,
        index: int,
        route: Route,
        state: PolicyState,
        own_host: bool = False,
        now: datetime,
    ) -> Decision:
        def decision(
            action: Action, reason: str, sent: int = 0, burst: Budget | None = None
        ) -> Decision:
            return Decision(
                action=action,
                reason=reason,
                recipient=recipient,
                route=index,
                sent=sent,
                burst=burst,
            )

        matched = f"route #{index + 1} ({route_summary(route)}) matches {describe(event)}"
        if route.mode == "ignore":
            return decision(Action.IGNORE, f"{matched}; mode ignore")
        if route.mode == "digest":
            return decision(Action.DIGEST, f"{matched}; mode digest")
        silence = active_silence(self.silences, event, recipient, now)
        if silence is not None:
            why = f"; {silence.comment}" if silence.comment else ""
            until = silence.until.isoformat(timespec="minutes")
            return decision(Action.SILENCED, f"{matched}; silenced until {until}{why}")
        own = state.count(recipient, event.host, event.kind)
        fleet = state.fleet_count(recipient, event.kind)
        if own.sent >= self.flood_max:
            budget, count = Budget.HOST, own
            about = f"{event.kind} alerts about host {quoted(event.host)}"
        elif fleet.sent >= self.flood_max_fleet and not (own_host and event.kind == "login"):
            # A login its host's own broker user reported is never folded by the fleet
            # budget: a relay (or the central user, or five hosts) flooding under many
            # names would otherwise hide a real login on every other host.
            budget, count = Budget.FLEET, fleet
            about = f"{event.kind} alerts from all hosts"
        else:
            return decision(Action.IMMEDIATE, matched, own.sent)
        limit = f"{count.sent} {about} within {_duration(self.flood_window)}"
        if not count.burst_sent:
            return decision(Action.BURST, f"{matched}; flood control: {limit}", count.sent, budget)
        return decision(Action.FOLDED, f"{matched}; folded into the digest: {limit}", count.sent)


def active_silence(
    silences: tuple[Silence, ...], event: LoginEvent, recipient: str, now: datetime
) -> Silence | None:
    """The first silence in force at ``now`` that covers the event and recipient."""
    for silence in silences:
        if now >= silence.until:
            continue
        if silence.to and recipient not in (r.lower() for r in silence.to):
            continue
        if (
            globs_match(silence.hosts, event.host.lower(), fold=True)
            and globs_match(silence.users, event.user)
            and globs_match(silence.kinds, event.kind)
            and source_matches(silence.sources, event.client_ip)
        ):
            return silence
    return None


def source_matches(networks: tuple[str, ...], address: str) -> bool:
    """True when ``networks`` is empty or contains ``address`` (a bad address matches none)."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


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
