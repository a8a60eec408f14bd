"""Each finding in words: the line an alert shows for it, the same in every channel, and a
short tag for the subject. Host, user and place text is made visible here (it is hostile).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from consumer.core.detections import Brute, Escalation, Hop, Origin, Session, Spot, Travel
from consumer.core.display import visible
from consumer.core.enriched import Enriched

SHORT: Final = 64
SERVICES: Final = {"sshd": "SSH", "login": "the console", "su": "su", "sudo": "sudo"}


def span(seconds: float) -> str:
    """``10 minutes``, ``1 hour``, ``90 seconds``, ``2 days``: a window in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    count = int(seconds)
    return f"{count} second{'' if count == 1 else 's'}"


def length(seconds: float) -> str:
    """A session's length: ``42 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    whole = int(max(seconds, 0))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def brute(found: Brute) -> str:
    """``after 37 failed passwords from this address in the last 10 minutes``, with how
    many hit other hosts when some did."""
    said = (f"after {found.fleet} failed password{'' if found.fleet == 1 else 's'} from this"
            f" address in the last {span(found.window)}")  # fmt: skip
    if found.fleet > found.host:
        said += f" ({found.host} on this host, {found.fleet - found.host} on other hosts)"
    return said


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _spot(spot: Spot) -> str:
    where = visible(spot.place, SHORT) or f"{spot.latitude:.2f}, {spot.longitude:.2f}"
    return (f"{where} ({visible(spot.address, SHORT) or 'no address'} on"
            f" {visible(spot.host, SHORT)}) at {_when(spot.at)}")  # fmt: skip


def travel(found: Travel) -> str:
    """Both places, both times, the distance and the speed it implies."""
    return (f"impossible travel: {_spot(found.before)}, then {_spot(found.after)}:"
            f" {found.km:,.0f} km apart, {found.kmh:,.0f} km/h")  # fmt: skip


def origin(found: Origin) -> str:
    """``alice, in over SSH from 198.51.100.7 with key SHA256:…``."""
    how = SERVICES.get(found.service, visible(found.service, SHORT) or "a login")
    said = f"{visible(found.user, SHORT)}, in over {how}"
    if found.source:
        said += f" from {visible(found.source, SHORT)}"
    if found.fingerprint:
        said += f" with key {found.fingerprint}"
    return said


def escalation(found: Escalation, user: str, host: str) -> str:
    """``alice, in over SSH from 198.51.100.7 with key SHA256:…, became root on web-1 via
    sudo``; without its login: ``alice became root on web-1 via sudo (no login found …)``."""
    became = (f"became {visible(found.target, SHORT) or 'root'} on {visible(host, SHORT)}"
              f" via {visible(found.via, SHORT)}")  # fmt: skip
    if found.origin is None:
        return (f"{visible(user, SHORT)} {became} (no login found for this session: a console,"
                " a cron job, or a login before loginwatch watched)")  # fmt: skip
    return f"{origin(found.origin)}, {became} (linked by {found.origin.linked_by})"


def hop(found: Hop) -> str:
    """``through a jump host: 198.51.100.7 → bastion → db-1``."""
    chain = " → ".join(visible(link, SHORT) for link in found.chain)
    return f"through a jump host: {chain} (the original client is {visible(found.client, SHORT)})"


def session(found: Session) -> str:
    """``session of 1 h 02 min, from the login at … (event …, linked by …)``."""
    said = "session" if found.seconds is None else f"session of {length(found.seconds)}"
    if found.origin is not None:
        return (f"{said}, from the login at {_when(found.origin.at)} (event"
                f" {found.origin.event_id}, linked by {found.origin.linked_by})")  # fmt: skip
    if found.login_at is not None:
        return f"{said}, from {_when(found.login_at)} (its login event was not found)"
    return f"{said} (its start is not recorded)"


def findings(enriched: Enriched) -> tuple[tuple[str, str], ...]:
    """Every finding about one event as (kind, line), the most urgent first; the kinds are
    the webhook schema's ``findings[].kind``."""
    event = enriched.event
    found: list[tuple[str, str]] = []
    if enriched.escalation is not None:
        # su's and sudo's PAM_RUSER is who ran them; PAM_USER whom they became.
        who = event.ruser or event.user
        found.append(("escalation", escalation(enriched.escalation, who, event.host)))
    if enriched.brute is not None:
        found.append(("brute-force", "Login " + brute(enriched.brute)))
    if enriched.travel is not None:
        found.append(("impossible-travel", _capital(travel(enriched.travel))))
    if enriched.first_seen.key and event.kind == "login":
        found.append(("new-key", f"A key {visible(event.user, SHORT)} never used before"))
    if enriched.hop is not None:
        found.append(("hop", "Logged in " + hop(enriched.hop)))
    if enriched.session is not None:
        found.append(("session", _capital(session(enriched.session))))
    return tuple(found)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


TAGS: Final = {
    "escalation": "ESCALATION",
    "brute-force": "AFTER BRUTE FORCE",
    "impossible-travel": "IMPOSSIBLE TRAVEL",
    "hop": "VIA JUMP HOST",
}


def tag(found: tuple[tuple[str, str], ...], new_source: bool) -> str:
    """The subject's prefix: the most urgent finding's tag, else ``NEW SOURCE`` for a new
    source, else ``NEW KEY`` for a key the user never used (from a familiar source: a
    stolen laptop's key from the office), else none."""
    for kind, _ in found:
        if kind in TAGS:
            return TAGS[kind]
    if new_source:
        return "NEW SOURCE"
    return "NEW KEY" if any(kind == "new-key" for kind, _ in found) else ""
