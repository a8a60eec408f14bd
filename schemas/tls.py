"""The one TLS client context for ``amqps://``, used by the hook and the worker.

Stdlib ``ssl`` only, so a host needs nothing beyond pika and msgspec. The
context always verifies the broker's certificate and its host name: against
``[broker] ca_file`` when set, else the system's trust store. A client
certificate (``cert_file`` + ``key_file``) is presented when configured, for
brokers that demand one (``ssl_options.fail_if_no_peer_cert = true``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from schemas.config import BrokerConfig
from schemas.errors import ConfigError


def tls_context(broker: BrokerConfig) -> ssl.SSLContext | None:
    """A verifying client context for the ``amqps://`` nodes (one context serves them all:
    the host name is checked per connection); None when every node is ``amqp://``.

    Raises:
        ConfigError: TLS files set while a node's URL is plain ``amqp://``, only one of
            ``cert_file``/``key_file`` set, or a file that cannot be loaded.
    """
    tls_files = (broker.ca_file, broker.cert_file, broker.key_file)
    schemes = [urlsplit(url).scheme for url in broker.nodes]
    if any(tls_files) and "amqp" in schemes:
        # Silently sending credentials in clear text would be worse than failing.
        key = broker.node_key(schemes.index("amqp"))
        raise ConfigError(f"{key}: ca_file/cert_file/key_file need an amqps:// URL")
    if "amqps" not in schemes:
        return None
    if (broker.cert_file is None) != (broker.key_file is None):
        raise ConfigError("$.broker: cert_file and key_file go together")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context.load_verify_locations, "$.broker.ca_file", broker.ca_file)
    if broker.cert_file is not None:
        _load(context.load_cert_chain, "$.broker.cert_file", broker.cert_file, broker.key_file)
    return context


def _load(loader: Callable[..., object], key: str, path: str | None, *more: str | None) -> None:
    """Call ``loader(path, *more)``, naming the key when the file is unusable.

    Raises:
        ConfigError: the file is missing, unreadable or not PEM.
    """
    if path is None:
        return
    try:
        loader(path, *more)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(f"{key}: cannot load {path}: {reason}") from None
