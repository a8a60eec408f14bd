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

import ipaddress
from fnmatch import fnmatchcase

from schemas.config import Route
from schemas.event import LoginEvent


def globs_match(globs: tuple[str, ...], text: str, *, fold: bool = False) -> bool:
    """True when ``globs`` is empty or one glob matches all of ``text``."""
    if not globs:
        return True
    return any(fnmatchcase(text, glob.lower() if fold else glob) for glob in globs)


def source_matches(networks: tuple[str, ...], address: str) -> bool:
    """True when ``networks`` is empty or contains ``address`` (a bad address matches none)."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def fingerprint_matches(fingerprints: tuple[str, ...], fingerprint: str) -> bool:
    """True when ``fingerprints`` is empty or names ``fingerprint`` exactly (``SHA256:…``,
    case kept: base64 is case-sensitive). An event without a key matches no list."""
    return not fingerprints or fingerprint in fingerprints


def route_matches(route: Route, event: LoginEvent) -> bool:
    """The route's host (case-insensitive), user, kind and service globs, its source
    networks and its key fingerprints all match the event."""
    return (
        globs_match(route.hosts, event.host.lower(), fold=True)
        and globs_match(route.users, event.user)
        and globs_match(route.kinds, event.kind)
        and globs_match(route.services, event.service)
        and source_matches(route.sources, event.client_ip)
        and fingerprint_matches(route.fingerprints, event.fingerprint)
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


def system_routes(routes: tuple[Route, ...], kind: str, host: str) -> dict[str, tuple[int, Route]]:
    """Who hears about a system alert of ``kind`` about ``host`` (core/system.py), each
    recipient (lower-cased) with the route that decides it.

    When a route's ``kinds`` name the system kind (a glob matching it; an empty ``kinds``
    does not count), only such routes apply, with their host globs and their modes: the
    operator routed that kind. Otherwise every ``immediate`` route's recipients hear
    about it, whatever the route's globs say: a flood or a lost login concerns everyone
    who gets alerts. User globs never apply (a system alert is about no user).
    """
    named = [(i, r) for i, r in enumerate(routes) if r.kinds and globs_match(r.kinds, kind)]
    if named:
        chosen = [(i, r) for i, r in named if globs_match(r.hosts, host.lower(), fold=True)]
    else:
        chosen = [(i, r) for i, r in enumerate(routes) if r.mode == "immediate"]
    recipients: dict[str, tuple[int, Route]] = {}
    for index, route in chosen:
        for recipient in route.to:
            recipients.setdefault(recipient.lower(), (index, route))
    return recipients


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
