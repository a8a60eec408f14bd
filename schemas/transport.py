"""One transport rule for every client that leaves this machine: verified TLS, or loopback,
or plain text that the section naming the peer explicitly allows (``allow_plaintext``).

Every peer asks it the same way, when the config is decoded, so ``check-config``, the worker,
the digest scheduler and the hook can never disagree about what a config allows:

- the broker (``[broker] url``/``urls``): ``amqps://``;
- PostgreSQL (``[store] url``): ``sslmode=verify-full`` or ``verify-ca`` (``postgres_refusal``);
  ``sslmode=require`` encrypts but believes any certificate, so a man in the middle still
  reads the password;
- SMTP (``[smtp]``): ``starttls`` or ``ssl``, whose certificate and host name are always
  verified; without them a relay in the middle reads every alert, or answers 250 and
  drops it;
- HTTP receivers (the channels, ``schemas/receivers.py``): ``https://``.

``*_mode`` say, for ``check-config``, how each peer is reached.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import parse_qs, urlsplit

# libpq's sslmode values that check the server's certificate (verify-full: and its name).
VERIFIED_SSLMODES: Final = ("verify-full", "verify-ca")
POSTGRES_PORT: Final = 5432


def is_loopback(host: str | None) -> bool:
    """Whether a URL's host is this machine: ``localhost``, 127.0.0.0/8 or ``::1``.

    No host at all is pika's default, ``localhost``. A name is never resolved:
    ``localhost.example.org`` or ``127.0.0.1.nip.io`` are somebody else's.
    """
    if not host or host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def plaintext_refusal(
    key: str,
    host: str | None,
    *,
    encrypted: bool,
    allow_plaintext: bool,
    plain: str,
    what: str,
    fix: str,
) -> str | None:
    """Why a client may not talk to ``host`` this way (None: it may): ``what`` (e.g. "the
    broker password") would cross the network unencrypted. ``key`` names the config key,
    ``plain`` the unencrypted way it asks for (e.g. "amqp://"), ``fix`` what to write
    instead (e.g. "use amqps://")."""
    if encrypted or allow_plaintext or is_loopback(host):
        return None
    return (
        f"{key} is {plain} to {host}, which would send {what} unencrypted: {fix}, or set"
        " allow_plaintext = true"
    )


# -- PostgreSQL ---------------------------------------------------------------------------


def postgres_hosts(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs a libpq URL names, as libpq reads them: the hosts of the
    authority (``h1,h2:5433``), or ``?host=`` (a unix socket directory starts with ``/``);
    none: the default unix socket."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    netloc = parts.netloc.rpartition("@")[2]
    hosts = (
        [(host, POSTGRES_PORT) for host in query["host"][-1].split(",")]
        if "host" in query
        else _split_hosts(netloc)
    )
    ports = query["port"][-1].split(",") if "port" in query else []
    found = []
    for index, (host, port) in enumerate(hosts):
        given = ports[index] if index < len(ports) else ports[-1] if ports else port
        found.append((host, int(given) if str(given).isdigit() else POSTGRES_PORT))
    return [pair for pair in found if pair[0]] or [("", POSTGRES_PORT)]


def _split_hosts(netloc: str) -> list[tuple[str, int | str]]:
    pairs: list[tuple[str, int | str]] = []
    for item in netloc.split(","):
        if item.startswith("["):  # [::1]:5432
            host, _, rest = item[1:].partition("]")
            pairs.append((host, rest.removeprefix(":") or POSTGRES_PORT))
            continue
        host, sep, port = item.rpartition(":")
        pairs.append((host, port) if sep else (item, POSTGRES_PORT))
    return pairs


def _local(host: str) -> bool:
    """A unix socket directory (``/run/postgresql``; libpq's ``@`` abstract ones), or loopback."""
    return host.startswith(("/", "@")) or is_loopback(host)


def sslmode(url: str, ca_file: str | None = None) -> str | None:
    """The URL's ``sslmode``; without one, ``verify-full`` when a ``ca_file`` is given (the
    store asks for it then), else None (libpq's default, ``prefer``: no check at all)."""
    query = parse_qs(urlsplit(url).query)
    if "sslmode" in query:
        return query["sslmode"][-1]
    return "verify-full" if ca_file else None


def postgres_refusal(
    key: str, url: str, *, ca_file: str | None, allow_plaintext: bool
) -> str | None:
    """Why the store may not connect to ``url`` (None: it may): a host off this machine
    without ``sslmode=verify-full`` or ``verify-ca``."""
    mode = sslmode(url, ca_file)
    if allow_plaintext or mode in VERIFIED_SSLMODES:
        return None
    remote = [host for host, _ in postgres_hosts(url) if not _local(host)]
    if not remote:
        return None
    said = f"sslmode={mode}" if mode else "no sslmode (libpq's default, prefer)"
    return (
        f"{key} names {remote[0]} with {said}: the store password and every first-seen and"
        " flood count would cross the network unverified (a man in the middle can ask for"
        " the password in clear text): add ?sslmode=verify-full to the URL and set"
        " [store] ca_file to the CA of the server's certificate, or set allow_plaintext = true"
    )


def _where(host: str, port: int) -> str:
    if host.startswith(("/", "@")):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def postgres_mode(url: str, ca_file: str | None) -> str:
    """How the store reaches its server, e.g. ``db:5432 verified TLS (verify-full)``."""
    mode = sslmode(url, ca_file)
    hosts = postgres_hosts(url)
    where = ", ".join(_where(h, p) if h else "the default unix socket" for h, p in hosts)
    if mode in VERIFIED_SSLMODES:
        return f"{where} verified TLS ({mode})"
    if all(host.startswith(("/", "@")) or not host for host, _ in hosts):
        return f"{where} local (unix socket)"
    if all(_local(host) for host, _ in hosts):
        return f"{where} plain (loopback)"
    if mode == "require":
        return f"{where} TLS, NOT verified (sslmode=require; allow_plaintext)"
    return f"{where} PLAIN TEXT possible (sslmode={mode or 'prefer'}; allow_plaintext)"


# -- SMTP -------------------------------------------------------------------------------


def smtp_refusal(
    key: str, host: str, *, starttls: bool, ssl: bool, allow_plaintext: bool
) -> str | None:
    """Why ``[smtp]`` may not reach ``host`` (None: it may): a relay off this machine
    without STARTTLS or implicit TLS."""
    return plaintext_refusal(
        key,
        host,
        encrypted=starttls or ssl,
        allow_plaintext=allow_plaintext,
        plain="SMTP without TLS",
        what="every alert (and the SMTP password) to whoever answers",
        fix="set starttls = true (port 587) or ssl = true (port 465)",
    )


def smtp_mode(host: str, port: int, *, starttls: bool, ssl: bool) -> str:
    """How alerts reach the relay, e.g. ``relay:587 STARTTLS, verified``."""
    where = _where(host, port)
    if ssl:
        return f"{where} TLS, verified"
    if starttls:
        return f"{where} STARTTLS, verified"
    if is_loopback(host):
        return f"{where} plain (loopback)"
    return f"{where} PLAIN TEXT (allow_plaintext)"


# -- AMQP and HTTP: a scheme says it ------------------------------------------------------


def url_mode(url: str, ports: dict[str, int]) -> str:
    """How a URL's peer is reached, e.g. ``mq1:5671 verified TLS``; ``ports``: the default
    port of each scheme, the secure one first (``{"amqps": 5671, "amqp": 5672}``)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    where = _where(host, parts.port or ports.get(parts.scheme, 0))
    if parts.scheme == next(iter(ports)):
        return f"{where} verified TLS"
    if is_loopback(host):
        return f"{where} plain (loopback)"
    return f"{where} PLAIN TEXT (allow_plaintext)"


class WrongScheme(ValueError):
    """A URL of neither scheme a peer speaks (``scheme_refusal``)."""


def scheme_refusal(
    key: str, url: str, schemes: tuple[str, str], *, allow_plaintext: bool, what: str
) -> str | None:
    """Why a client may not reach ``url`` (None: it may): its plain scheme (``schemes``:
    the encrypted one, then the plain one, e.g. ``("amqps", "amqp")``) to a host off this
    machine, which would send ``what`` unencrypted.

    Raises:
        WrongScheme: the URL has neither scheme.
    """
    secure, plain = schemes
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise WrongScheme(f"expected an {plain}:// or {secure}:// URL")
    return plaintext_refusal(
        key,
        parts.hostname,
        encrypted=parts.scheme == secure,
        allow_plaintext=allow_plaintext,
        plain=f"{plain}://",
        what=what,
        fix=f"use {secure}://",
    )
