"""Where a login user's "was this you?" goes: ``[notify_user]``'s table, then its template.

Only a successful login is ever asked about: a failed login's user name is whatever the
stranger typed, and must never become an address or a chat target (``decide.ask``). The
table is looked up with the user name exactly as the host reported it (Linux names are
case-sensitive). The template is expanded only for a portable user name
(``schemas.actions.portable``: 1-32 of ``A-Z a-z 0-9 . _ -``, no leading ``-``), with its
case kept, and the result must be an address. ``root`` is never asked, nor a name that
``skip`` matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.core.display import quoted
from consumer.core.routing import globs_match
from schemas.actions import NotifyUserConfig, portable
from schemas.receivers import recipient_problem


@dataclass(frozen=True)
class Target:
    """Who to ask (an address or ``receiver:NAME``), or None with the reason why nobody."""

    recipient: str | None
    reason: str


def target_of(user: str, notify: NotifyUserConfig) -> Target:
    """The recipient of ``user``'s question; pure."""
    who = f"user {quoted(user)}"
    if user == "root":
        return Target(None, "root is never asked (no one person owns it)")
    if notify.skip and globs_match(notify.skip, user):
        return Target(None, f"{who} is in [notify_user] skip")
    if user in notify.users:
        return Target(notify.users[user], f"{who} is in [notify_user] users")
    return _from_template(user, notify.template, who)


def _from_template(user: str, template: str | None, who: str) -> Target:
    if template is None:
        return Target(None, f"{who} has no address ([notify_user] users, no template)")
    if not portable(user):
        return Target(None, f"{who} is no portable user name: the template is not expanded")
    address = template.replace("{user}", user)
    if recipient_problem(address) or "@" not in address:
        return Target(None, f"{who} gives no valid address from the template")
    return Target(address, f"{who} by the [notify_user] template")
