"""The broker's nodes: their URLs with the password, the user and vhost they share, and the
order in which a machine tries them (``NodeCursor``).

One node is ``[broker] url``; a cluster is ``urls``, one per node, all with the same user,
password and vhost (the config checks that when it is decoded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from schemas.config import url_identity
from schemas.files import read_secret

if TYPE_CHECKING:
    from schemas.config import BrokerConfig


def broker_urls(broker: BrokerConfig) -> tuple[str, ...]:
    """Every node's URL, with the password from ``password_file`` when one is set (read once).

    Raises:
        ConfigError: the password file is missing or too open.
    """
    if broker.password_file is None:
        return broker.nodes
    password = read_secret(broker.password_file, "$.broker.password_file")
    return tuple(_with_password(url, password) for url in broker.nodes)


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(unquote(user), safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def broker_url(broker: BrokerConfig) -> str:
    """The first node's URL with the password from ``password_file`` (``broker_urls``\'s
    first): for a tool that needs one node, any node of the cluster.

    Raises:
        ConfigError: the password file is missing or too open.
    """
    return broker_urls(broker)[0]


def broker_user(broker: BrokerConfig) -> str:
    """The AMQP user name in the URLs (what the broker checks ``user_id`` against; the
    same on every node)."""
    return url_identity(broker.nodes[0])[0]


def broker_vhost(broker: BrokerConfig) -> str:
    """The vhost the URLs name (``/`` when the path is empty; the same on every node)."""
    return url_identity(broker.nodes[0])[2]


def node_order(count: int, name: str) -> tuple[int, ...]:
    """The order in which a machine called ``name`` tries ``count`` broker nodes: from one
    chosen by a stable hash of the name, then the others in turn. So a fleet spreads over
    the nodes, and every run of one host starts at the same node."""
    import hashlib  # noqa: PLC0415 - only the publisher needs it, not the hook's foreground

    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count
    return tuple((start + step) % count for step in range(count))


class NodeCursor:
    """Which broker node to try first: at the start the one ``node_order`` picks for the
    machine ``name``, then the one that worked last, or after a lost connection the node
    after the lost one. The hook's publisher keeps one per flush; a central consumer one for
    every connection its runtime opens in turn (``consumer.broker.connection.node_cursor``)."""

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self.first = node_order(count, name)[0]

    def order(self) -> tuple[int, ...]:
        """The nodes to try, first one first."""
        return tuple((self.first + step) % self.count for step in range(self.count))

    def worked(self, node: int) -> None:
        self.first = node

    def lost(self, node: int) -> None:
        self.first = (node + 1) % self.count
