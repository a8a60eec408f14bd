"""``loginwatch web``: the small web service behind every link in an alert or a question.

Owns: the ASGI app (``app``: Starlette routes, each page rendered from
``consumer/templates/web/`` with autoescape), the security every response carries
(``headers``: a CSP without inline script, no framing, no caching), signing in (``auth``:
a password file of scrypt hashes, or a reverse proxy's header trusted only on a restricted
unix socket or with a shared secret; failed sign-ins rate-limited), sessions and single-use
form nonces in the store (``sessions``), the operator page's reads (``overview``), the
answer and silence actions (``actions``), and running it under uvicorn (``server``).

A GET or HEAD never changes anything: every change is the POST of a form that carries a
CSRF token and a single-use nonce, and no page submits a form by itself (it has no script).

Imports from consumer: core, store, channels, silences, questions (never alerts, broker,
commands, detect, digest, lookups, stages).
"""
