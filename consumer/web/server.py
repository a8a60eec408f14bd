"""Running ``loginwatch web``: its parts built from the config, served by uvicorn.

uvicorn serves the app over one socket that this module opens itself: a TCP address, or
a unix socket created with ``[web] socket_mode`` and ``socket_group`` before a byte can
arrive (uvicorn's own ``uds`` would make it 0666, which any local user could reach, and
so send a trusted proxy header). TLS comes from ``tls_cert_file``/``tls_key_file`` when
set. Beside it runs the upkeep: escalations a transient failure left are tried again
every ``RETRY_EVERY_S``, and the web tables are pruned every hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import stat
from datetime import UTC, datetime, timedelta
from typing import Final

import uvicorn
from starlette.concurrency import run_in_threadpool

from consumer.channels.mail_templates import template_environment
from consumer.channels.outlets import open_outlets
from consumer.core.display import visible
from consumer.core.links import Signer
from consumer.questions.escalate import Escalator
from consumer.questions.message import Messages
from consumer.questions.table import QuestionTable
from consumer.silences.rules import from_config
from consumer.silences.table import SilenceTable
from consumer.store import Store, open_store
from consumer.store.actions import prune_actions
from consumer.web import auth
from consumer.web.app import Web, build_app
from consumer.web.overview import Overview
from consumer.web.sessions import Nonces, Sessions
from schemas.actions import span_seconds
from schemas.config import Config, store_password
from schemas.errors import ConfigError, StoreError
from schemas.files import read_secret_lines

log = logging.getLogger("loginwatch.web")

RETRY_EVERY_S: Final = 15.0
PRUNE_EVERY_S: Final = 3600.0


def build(config: Config, store: Store | None = None) -> Web:
    """Every part of the web service, its secrets read and checked now.

    Raises:
        ConfigError: no ``[web] base_url``, or a key, password or proxy secret file is
            missing, too open or malformed.
        StoreError: the store cannot be opened.
    """
    web = config.web
    if web.base_url is None:
        raise ConfigError("$.web.base_url: loginwatch web needs the URL people reach it by")
    keys = read_secret_lines(web.secret_file, "$.web.secret_file")
    signer = Signer(keys)
    if web.password_file is not None:
        auth.read_passwords(web.password_file)  # a bad file stops the start, naming the key
    secret = auth.proxy_secret(web.proxy_secret_file)
    store = store or open_store(config.store.url, password=store_password(config.store))
    channel = open_outlets(config)
    env = template_environment(config.render.templates)
    env.filters["visible"] = lambda text, limit=300: visible(str(text), limit)
    return Web(
        config=config,
        store=store,
        signer=signer,
        sessions=Sessions(store.db, timedelta(seconds=span_seconds(web.session_for))),
        nonces=Nonces(store.db, keys[-1]),
        throttle=auth.Throttle(store.db, web.max_failed_logins),
        overview=Overview(store, tuple(from_config(i, s) for i, s in enumerate(config.silence))),
        questions=QuestionTable(store.db),
        silences=SilenceTable(store.db),
        escalator=Escalator(config, store, channel, Messages(config)),
        env=env,
        key=keys[-1],
        clock=lambda: datetime.now(UTC),
        unix=web.unix is not None,
        proxy_secret=secret,
    )


def open_socket(config: Config) -> socket.socket:
    """The listening socket of ``[web] listen``: TCP, or a unix socket whose mode and group
    are set before it listens (an old socket file there is replaced; any other file stays).

    Raises:
        ConfigError: the address cannot be bound, or the path holds something else.
    """
    web = config.web
    path = web.unix
    if path is None:
        host, port = web.address()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"$.web.listen: cannot listen on {web.listen}: {exc.strerror}"
            ) from None
        sock.listen(128)
        return sock
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigError(f"$.web.listen: {path} exists and is no socket: move it away")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # nobody but us until the mode below is set
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"$.web.listen: cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    if web.socket_group is not None:
        try:
            gid = grp.getgrnam(web.socket_group).gr_gid
        except KeyError:
            sock.close()
            raise ConfigError(f"$.web.socket_group: no group {web.socket_group!r}") from None
        os.chown(path, -1, gid)
    os.chmod(path, web.socket_mode)
    sock.listen(128)
    return sock


async def _upkeep(web: Web) -> None:
    """Escalations left by a transient failure, again and again; pruning, hourly."""
    pruned = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(RETRY_EVERY_S)
        now = web.clock()
        await run_in_threadpool(web.escalator.pending, now)
        if loop.time() - pruned >= PRUNE_EVERY_S:
            pruned = loop.time()
            keep = timedelta(seconds=web.config.store.keep.seconds)
            try:
                await run_in_threadpool(prune_actions, web.store.db, before=now - keep, now=now)
            except StoreError as exc:
                log.warning("pruning the web's tables: %s", exc)


def serve(config: Config) -> int:
    """Serve until SIGTERM or SIGINT; the exit status.

    Raises:
        ConfigError, StoreError: as ``build`` and ``open_socket``.
    """
    web = build(config)
    sock = open_socket(config)
    settings = uvicorn.Config(
        build_app(web),
        proxy_headers=False,  # who the client is: client_of decides, trusting only our proxy
        server_header=False,
        log_config=None,
        access_log=False,
        timeout_keep_alive=5,
        limit_concurrency=200,
        ssl_certfile=config.web.tls_cert_file,
        ssl_keyfile=config.web.tls_key_file,
        lifespan="off",
    )
    server = uvicorn.Server(settings)
    log.info("loginwatch web listening on %s for %s", config.web.listen, config.web.base_url)

    async def main() -> None:
        upkeep = asyncio.create_task(_upkeep(web))
        try:
            await server.serve(sockets=[sock])
        finally:
            upkeep.cancel()

    try:
        asyncio.run(main())
    finally:
        sock.close()
        web.escalator.channel.close()
        web.store.close()
    return 0
