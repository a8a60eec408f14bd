"""Route precedence, the one rule the worker's policy and the digest both follow.

Every ``[[route]]`` whose globs all match an event applies (all-matches); a recipient
named by several matching routes is decided by the first of them, so an earlier
``mode = "ignore"`` route exempts that recipient from a later catch-all. The worker's
policy (``stages/policy.py``) decides each recipient by that route; the digest stores,
with each event, the recipients whose first matching route is not ``ignore`` (its
audience: ``immediate`` recipients too, where their silenced and folded events surface),
and sends a digest to everyone a non-ignore route names.

Globs are matched with ``fnmatchcase`` against the literal event text: the patterns come
from the operator's config, the subject strings never become patterns, so hostile text
cannot change what matches.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from schemas.config import Route
from schemas.event import LoginEvent


def globs_match(globs: tuple[str, ...], text: str, *, fold: bool = False) -> bool:
    """True when ``globs`` is empty or one glob matches all of ``text``."""
    if not globs:
        return True
    return any(fnmatchcase(text, glob.lower() if fold else glob) for glob in globs)


def route_matches(route: Route, event: LoginEvent) -> bool:
    """The route's host (case-insensitive), user and kind globs all match the event."""
    return (
        globs_match(route.hosts, event.host.lower(), fold=True)
        and globs_match(route.users, event.user)
        and globs_match(route.kinds, event.kind)
    )


def first_routes(routes: tuple[Route, ...], event: LoginEvent) -> dict[str, tuple[int, Route]]:
    """Each recipient (lower-cased) of a matching route → the first matching route that
    names it, with its index in ``routes``; in the order the routes name them."""
    chosen: dict[str, tuple[int, Route]] = {}
    for index, route in enumerate(routes):
        if route_matches(route, event):
            for recipient in route.to:
                chosen.setdefault(recipient.lower(), (index, route))
    return chosen


def audience(routes: tuple[Route, ...], event: LoginEvent) -> tuple[str, ...]:
    """The recipients (lower-cased, sorted) whose digest includes ``event``: those whose
    first matching route is not ``ignore``."""
    chosen = first_routes(routes, event)
    return tuple(sorted(r for r, (_, route) in chosen.items() if route.mode != "ignore"))


def digest_recipients(routes: tuple[Route, ...]) -> tuple[str, ...]:
    """Everyone a non-ignore route names (lower-cased, sorted): each gets a digest."""
    return tuple(
        sorted({r.lower() for route in routes if route.mode != "ignore" for r in route.to})
    )
