"""The ASGI app of ``loginwatch web``: its routes, each a page or a form's POST.

    GET  /                        the operator page (signed in; else → /login)
    GET  /login   POST /login     sign in (password file); POST /logout
    GET  /a/ACTION/TOKEN          a link: the confirm page of an answer, or (signed in) the
                                  form of an ack or silence, else → /login?next=…
    POST /a/ACTION/TOKEN          the form's POST: answer (a "No" escalates at once), or
                                  make the silence
    POST /silences/ID/expire      end a silence early (signed in)
    GET  /style.css, /healthz

GET and HEAD only read. Every POST carries a single-use nonce (``sessions.Nonces``), an
operator's also the session's CSRF token. A link that is forged, altered, expired or used
gets a page that says so, and a 4xx: 400 forged, 410 expired or used. Store calls block,
so they run in Starlette's thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from consumer.core.display import visible
from consumer.core.links import ANSWER_NO, ANSWERS, REDUCING, Claims, Signer
from consumer.questions.escalate import Escalator
from consumer.questions.table import QuestionTable
from consumer.silences.rules import Rule
from consumer.silences.table import SilenceRefused, SilenceTable
from consumer.store import Store
from consumer.web import actions, auth
from consumer.web.headers import SecurityHeaders
from consumer.web.overview import Overview
from consumer.web.sessions import Nonces, Operator, Sessions, proxy_csrf
from schemas.config import Config
from schemas.errors import LinkError, LoginwatchError, StoreError

log = logging.getLogger("loginwatch.web")

COOKIE: Final = "loginwatch_session"
STATUS: Final = {"forged": 400, "expired": 410, "used": 410}
TITLES: Final = {"forged": "This link is not valid", "expired": "This link has expired",
                 "used": "This link was used already"}  # fmt: skip
FORM_MAX: Final = 16 * 1024  # bytes of a form we read


@dataclass
class Web:
    """Everything the routes use, built once by ``server.build``."""

    config: Config
    store: Store
    signer: Signer
    sessions: Sessions
    nonces: Nonces
    throttle: auth.Throttle
    overview: Overview
    questions: QuestionTable
    silences: SilenceTable
    escalator: Escalator
    env: jinja2.Environment
    key: str  # the newest link key: derives proxy CSRF tokens
    clock: Callable[[], datetime]
    unix: bool = False
    proxy_secret: str | None = None

    @property
    def root(self) -> str:
        """The path the app is mounted at behind a proxy (base_url's), without a trailing /."""
        return urlsplit(self.config.web.base_url or "").path.rstrip("/")

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.env.get_template(f"web/{name}.html.j2").render(root=self.root, **context)
        return HTMLResponse(body, status_code=status)

    def problem(self, why: str, detail: str) -> HTMLResponse:
        return self.page("problem", STATUS.get(why, 400), title=TITLES.get(why, "Not possible"),
                         detail=visible(detail, 300))  # fmt: skip


def client_of(web: Web, request: Request) -> str:
    """The client's address: the peer, or a trusted proxy's X-Forwarded-For (its last hop)."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded and _proxy_trusted(web, request):
        return forwarded.split(",")[-1].strip()[:64]
    return request.client.host if request.client else "unix"


def _proxy_trusted(web: Web, request: Request) -> bool:
    return auth.proxy_trusted(unix=web.unix, secret=web.proxy_secret,
                              sent=request.headers.get(auth.PROXY_SECRET_HEADER))  # fmt: skip


def operator_of(web: Web, request: Request) -> Operator | None:
    """The signed-in operator: a trusted proxy's header, else the session cookie (reads)."""
    header = web.config.web.proxy_header
    if header is not None and _proxy_trusted(web, request):
        name = request.headers.get(header, "")
        if auth.NAME.fullmatch(name):
            return Operator(name, proxy_csrf(web.key, name))
    return web.sessions.get(request.cookies.get(COOKIE), web.clock())


async def form_of(request: Request) -> dict[str, str]:
    """The posted form's fields (strings only; at most ``FORM_MAX`` bytes)."""
    if int(request.headers.get("content-length") or 0) > FORM_MAX:
        return {}
    form = await request.form(max_files=0, max_fields=20)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _safe_next(target: str, root: str) -> str:
    """Where to go after signing in: one of our own paths, never another site."""
    if target.startswith(f"{root}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{root}/"


def _login_redirect(web: Web, request: Request) -> RedirectResponse:
    back = quote(request.url.path, safe="/")
    return RedirectResponse(f"{web.root}/login?next={back}", status_code=303)


Handler = Callable[[Web, Request], Awaitable[Response]]


async def home(web: Web, request: Request) -> Response:
    operator = await run_in_threadpool(operator_of, web, request)
    if operator is None:
        return _login_redirect(web, request)
    now = web.clock()
    silences, questions, events = await run_in_threadpool(
        lambda: (web.overview.open_silences(now), web.overview.unanswered(now),
                 web.overview.events()))  # fmt: skip
    nonce = web.nonces.issue("operator", operator.csrf, now)
    return web.page("operator", operator=visible(operator.name, 64), csrf=operator.csrf,
                    nonce=nonce, silences=silences, questions=questions, events=events,
                    note=visible(request.query_params.get("note", ""), 120))  # fmt: skip


async def login(web: Web, request: Request) -> Response:
    nxt = _safe_next(request.query_params.get("next", ""), web.root)
    if request.method != "POST":
        nonce = web.nonces.issue("login", "login", web.clock())
        return web.page("login", nonce=nonce, next=nxt, error="")
    form = await form_of(request)
    return await run_in_threadpool(_sign_in, web, request, form)


def _sign_in(web: Web, request: Request, form: dict[str, str]) -> Response:
    now = web.clock()
    name, password = form.get("name", "")[:64], form.get("password", "")[:1024]
    nxt = _safe_next(form.get("next", ""), web.root)
    client = client_of(web, request)
    verdict = web.throttle.check(name, client, now)
    if not verdict.allowed:
        error = f"Too many failed sign-ins: wait {verdict.wait} s."
        response = web.page("login", 429, nonce=web.nonces.issue("login", "login", now),
                            next=nxt, error=error)  # fmt: skip
        response.headers["Retry-After"] = str(verdict.wait)
        return response
    try:
        web.nonces.spend(form.get("nonce", ""), "login", "login", now)
    except LinkError as exc:
        return web.problem(exc.why, str(exc))
    path = web.config.web.password_file
    passwords = auth.read_passwords(path) if path else {}
    if not auth.verify(passwords, name, password):
        web.throttle.failed(name, client, now, known=name in passwords)
        log.warning("failed sign-in as %s from %s", visible(name, 64), client)
        return web.page("login", 401, nonce=web.nonces.issue("login", "login", now), next=nxt,
                        error="Wrong name or password.")  # fmt: skip
    web.throttle.succeeded(name, client, now)
    operator = web.sessions.create(name, client, now)
    log.info("%s signed in from %s", name, client)
    going = RedirectResponse(nxt, status_code=303)
    lasting = int(web.sessions.lasting.total_seconds())
    going.set_cookie(COOKIE, operator.cookie, max_age=lasting, path=f"{web.root}/", secure=True,
                     httponly=True, samesite="lax")  # fmt: skip
    return going


async def logout(web: Web, request: Request) -> Response:
    form = await form_of(request)
    operator = await run_in_threadpool(operator_of, web, request)
    if operator is not None and _csrf_ok(operator, form) and operator.cookie:
        await run_in_threadpool(web.sessions.end, operator.cookie)
    response = RedirectResponse(f"{web.root}/login", status_code=303)
    response.delete_cookie(COOKIE, path=f"{web.root}/", secure=True, httponly=True,
                           samesite="lax")  # fmt: skip
    return response


def _csrf_ok(operator: Operator, form: dict[str, str]) -> bool:
    import hmac  # noqa: PLC0415 - only here

    return hmac.compare_digest(form.get("csrf", "").encode(), operator.csrf.encode())


async def link(web: Web, request: Request) -> Response:
    action = request.path_params["action"]
    token = request.path_params["token"]
    now = web.clock()
    try:
        claims = web.signer.verify(action, token, now)
    except LinkError as exc:
        return web.problem(exc.why, str(exc))
    if action in ANSWERS:
        return await _answer_link(web, request, claims)
    return await _silence_link(web, request, claims)


async def _answer_link(web: Web, request: Request, claims: Claims) -> Response:
    now = web.clock()
    try:
        question = await run_in_threadpool(actions.question_of, web.questions, claims)
        spent = await run_in_threadpool(web.questions.answers, question.id)
    except LinkError as exc:
        return web.problem(exc.why, str(exc))
    if request.method != "POST":
        if await run_in_threadpool(_answered_with, web, question.id, claims.id):
            return web.problem("used", "this link was used already")
        nonce = web.nonces.issue("answer", claims.id, now)
        return web.page("confirm", q=question, no=claims.action == ANSWER_NO, nonce=nonce,
                        answered=spent)  # fmt: skip
    form = await form_of(request)
    client, agent = client_of(web, request), request.headers.get("user-agent", "")
    try:
        await run_in_threadpool(web.nonces.spend, form.get("nonce", ""), "answer", claims.id, now)
        done = await run_in_threadpool(
            lambda: actions.answer(web.questions, claims, now, client=client, agent=agent)
        )
    except LinkError as exc:
        return web.problem(exc.why, str(exc))
    log.info("%s answered %s from %s: %s", question.id, actions.answer_of(claims.action), client,
             done.effect.reason)  # fmt: skip
    task = None
    if done.effect.escalate:
        task = BackgroundTask(run_in_threadpool, web.escalator.escalate, done.question, now)
    response = web.page("answered", q=done.question, effect=done.effect)
    response.background = task  # escalates once the page is sent: at once, never blocking it
    return response


def _answered_with(web: Web, question_id: str, token_id: str) -> bool:
    rows = web.store.db.execute("SELECT 1 FROM answer WHERE question_id = ? AND token_id = ?",
                                (question_id, token_id))  # fmt: skip
    return bool(rows)


async def _silence_link(web: Web, request: Request, claims: Claims) -> Response:
    if claims.action not in REDUCING:
        return web.problem("forged", "no such action")
    operator = await run_in_threadpool(operator_of, web, request)
    if operator is None:
        return _login_redirect(web, request)
    if request.method != "POST":
        return await _silence_form(web, claims, operator)
    return await _silence_post(web, request, claims, operator)


async def _silence_form(web: Web, claims: Claims, operator: Operator) -> Response:
    """The form a silence link fills in (for a signed-in operator; a GET, so it reads)."""
    if await run_in_threadpool(web.nonces.link_spent, claims.id):
        return web.problem("used", "this link made its silence already")
    offered = actions.offer(claims)
    return web.page("act", offer=offered, operator=visible(operator.name, 64),
                    csrf=operator.csrf, choices=actions.CHOICES,
                    default=_choice(offered.lasting),
                    nonce=web.nonces.issue("act", claims.id, web.clock()))  # fmt: skip


async def _silence_post(web: Web, request: Request, claims: Claims, operator: Operator) -> Response:
    now = web.clock()
    offered = actions.offer(claims)
    form = await form_of(request)
    if not _csrf_ok(operator, form):
        return web.problem("forged", "the form's CSRF token does not match your session")
    lasting = actions.lasting_of(form.get("for", ""), offered.lasting)
    try:
        rule = await run_in_threadpool(
            lambda: _make(web, claims, operator, form, lasting=lasting, now=now)
        )
    except LinkError as exc:
        return web.problem(exc.why, str(exc))
    except SilenceRefused as exc:
        return web.page("problem", 409, title="No silence made", detail=visible(str(exc), 300))
    note = quote(f"{rule.kind} {rule.id} made until {rule.until:%Y-%m-%d %H:%M} UTC")
    return RedirectResponse(f"{web.root}/?note={note}", status_code=303)


def _make(
    web: Web,
    claims: Claims,
    operator: Operator,
    form: dict[str, str],
    *,
    lasting: timedelta,
    now: datetime,
) -> Rule:
    web.nonces.spend(form.get("nonce", ""), "act", claims.id, now)
    web.nonces.spend_link(claims.id, claims.expires, now)
    rule = actions.make_silence(web.silences, claims, operator=operator.name, lasting=lasting,
                                comment=form.get("comment", ""), now=now)  # fmt: skip
    log.info("%s made %s %s until %s from a link", operator.name, rule.kind, rule.id, rule.until)
    return rule


def _choice(lasting: timedelta) -> str:
    return next((name for name, span in actions.CHOICES if span == lasting), "1d")


async def expire(web: Web, request: Request) -> Response:
    operator = await run_in_threadpool(operator_of, web, request)
    if operator is None:
        return _login_redirect(web, request)
    form = await form_of(request)
    if not _csrf_ok(operator, form):
        return web.problem("forged", "the form's CSRF token does not match your session")
    silence_id = request.path_params["silence"]
    now = web.clock()
    try:
        await run_in_threadpool(web.nonces.spend, form.get("nonce", ""), "operator",
                                operator.csrf, now)  # fmt: skip
        rule = await run_in_threadpool(web.silences.expire, silence_id, operator.name, now)
    except LinkError as exc:
        return web.problem(exc.why, str(exc))
    except SilenceRefused as exc:
        return web.page("problem", 409, title="Not expired", detail=visible(str(exc), 300))
    log.info("%s expired %s %s", operator.name, rule.kind, rule.id)
    return RedirectResponse(f"{web.root}/?note={quote(f'{rule.kind} {rule.id} expired')}",
                            status_code=303)  # fmt: skip


async def style(web: Web, request: Request) -> Response:
    css = web.env.loader.get_source(web.env, "web/style.css")[0] if web.env.loader else ""
    return Response(css, media_type="text/css")


async def healthz(web: Web, request: Request) -> Response:
    return PlainTextResponse("ok")


def build_app(web: Web) -> SecurityHeaders:
    """The app with every route bound to ``web``; store failures become a 503 page."""

    def bound(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(web, request)
            except StoreError as exc:
                log.error("store: %s", exc)
                return web.page("problem", 503, title="The store is not answering",
                                detail="Try again in a minute.")  # fmt: skip
            except LoginwatchError as exc:
                log.error("%s", exc)
                return web.page("problem", 500, title="Not possible now",
                                detail=visible(str(exc), 300))  # fmt: skip

        return endpoint

    routes: list[BaseRoute] = [
        Route("/", bound(home), methods=["GET"]),
        Route("/login", bound(login), methods=["GET", "POST"]),
        Route("/logout", bound(logout), methods=["POST"]),
        Route("/a/{action}/{token}", bound(link), methods=["GET", "POST"]),
        Route("/silences/{silence}/expire", bound(expire), methods=["POST"]),
        Route("/style.css", bound(style), methods=["GET"]),
        Route("/healthz", bound(healthz), methods=["GET"]),
    ]
    if web.root:  # behind a proxy at base_url's path, which it passes on
        routes = [Mount(web.root, routes=routes)]
    return SecurityHeaders(Starlette(routes=routes))
