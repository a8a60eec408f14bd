"""The headers every response of ``loginwatch web`` carries, whatever the page.

- ``Content-Security-Policy``: nothing but our own stylesheet and our own forms; no script
  at all (so no inline script either), no plugin, no frame, no ``<base>``; and
  ``frame-ancestors 'none'`` with ``X-Frame-Options: DENY``: no page of ours in a frame.
- ``Referrer-Policy: no-referrer``: a link's token is in its path, and must not leave in
  a ``Referer`` header.
- ``Cache-Control: no-store``: no proxy or browser keeps a page with a token or a session.
- ``X-Content-Type-Options: nosniff``, and a ``Permissions-Policy`` that asks for nothing.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware: ``HEADERS`` on every HTTP response (replacing any of the same name)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
