"""The one TOML configuration file, shared by the hook and the central side: its schema.

Decoded into frozen msgspec Structs; unknown keys are errors (a typo must not
silently fall back to a default), and every error names the file and the key:
``/etc/loginwatch/loginwatch.toml: $.smtp.port: expected int, got str``.
Durations (``"90s"``, ``"1d"``) are parsed here, once. Reading the file and its secrets
safely is ``schemas/files.py``; the broker's nodes and the order a machine tries them in,
``schemas/nodes.py``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from datetime import datetime
from typing import Annotated, Final, Literal, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

if sys.version_info >= (3, 11):
    import tomllib
else:  # a host's Python 3.9 or 3.10: tomli, which became tomllib
    import tomli as tomllib

from schemas.actions import NotifyUserConfig, WebConfig
from schemas.errors import ConfigError
from schemas.files import read_config_file, read_secret
from schemas.paths import CONFIG_ENV, DEFAULT_CONFIG
from schemas.receivers import (
    NAME_PATTERN,
    Receiver,
    ReceiverName,
    Recipient,
    recipient_problem,
    reference,
)
from schemas.transport import WrongScheme, postgres_refusal, scheme_refusal, smtp_refusal

_DURATION: Final = r"^\d+(\.\d+)?(s|m|h|d|w)$"
_DURATION_TEXT = Annotated[str, msgspec.Meta(pattern=_DURATION)]
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(duration: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"2w"`` in seconds (validated by ``Duration``)."""
    return float(duration[:-1]) * _UNITS[duration[-1]]


class Duration:
    """A length of time as the config writes it: ``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``,
    ``"2w"``. Immutable; converted once, when the config is decoded (``parse_config``), so
    code reads ``.seconds`` and messages show ``.text`` (``str()``), as written.

    Raises (from the constructor):
        ValueError: ``text`` is not such a duration.
    """

    __slots__ = ("seconds", "text")
    seconds: float
    text: str

    def __init__(self, text: str) -> None:
        if not re.fullmatch(_DURATION, text):
            raise ValueError(f"not a duration (90s, 15m, 1h, 1d, 2w): {text!r}")
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "seconds", seconds(text))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Duration is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return self.seconds == other.seconds if isinstance(other, Duration) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.seconds)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"


def _decode(kind: type, value: object) -> object:
    """``msgspec.convert``'s hook for the config's own types: a ``Duration`` from its text,
    refused with msgspec's own words, so the error still names the key."""
    if kind is Duration:
        try:
            return Duration(msgspec.convert(value, _DURATION_TEXT))
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None
    raise NotImplementedError(f"no decoder for {kind}")


Glob = Annotated[str, msgspec.Meta(min_length=1)]
# An SSH key's fingerprint as sshd logs it and the hook ships it: SHA256:<43 base64 chars>.
Fingerprint = Annotated[str, msgspec.Meta(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s<>]+@[^@\s<>]+$")]


# Fields say Optional[X], not X | None: msgspec evaluates the annotations at run time, and a
# host's Python 3.9 cannot (`make lint` checks this file at py39 with keep-runtime-typing).
class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


def _absolute(section: _Section, *keys: str) -> None:
    """Raise for a relative path: each reader would resolve it from its own directory.

    The hook runs from sshd's /, the flush unit from systemd's, `check-config`
    and `loginwatch-hook spool` from the operator's shell: a relative spool or
    secret would be a different file for each (and root would create it in /).
    """
    for key in keys:
        value = getattr(section, key)
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{key} {value!r} is not an absolute path: write it from /")


# The broker when [broker] names none: the local node, as RabbitMQ installs it.
DEFAULT_BROKER_URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
# A cluster's node URLs; 16 is more nodes than any quorum queue wants members.
_NodeUrls = Annotated[tuple[str, ...], msgspec.Meta(min_length=1, max_length=16)]


class BrokerConfig(_Section, frozen=True):
    # One node: `url`. A cluster: `urls`, one per node, all with the same user, password
    # and vhost (a cluster shares its users and vhosts). Never both; neither: the default.
    url: Optional[str] = None
    urls: Optional[_NodeUrls] = None
    password_file: Optional[str] = None
    # Each node that refuses or does not answer costs at most this before the next is tried.
    connect_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # The detached publisher gives up after this long; what it did not get
    # confirmed stays in the spool for the next login or the flush timer.
    publish_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 20.0
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    # amqp:// sends the password in clear text: only to a loopback broker, unless this says so.
    allow_plaintext: bool = False
    # Limits of every loginwatch queue, applied by `loginwatch setup` as a RabbitMQ
    # policy (schemas/topology.py says which queue refuses and which drops its oldest).
    queue_max_length: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    queue_max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 256 * 1024 * 1024
    # Alert lanes: queues `loginwatch.alerts.0` … that RabbitMQ hashes each speaker onto
    # (its broker user, which the routing key must begin with). A flooding host delays the
    # hosts of its own lane only, about 1/alert_lanes of the fleet (docs/central.md).
    alert_lanes: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8

    @property
    def nodes(self) -> tuple[str, ...]:
        """The URL of every broker node, as written: ``urls``, or ``(url,)``, or the default."""
        if self.urls is not None:
            return self.urls
        return (self.url if self.url is not None else DEFAULT_BROKER_URL,)

    def node_key(self, index: int) -> str:
        """The config key that names node ``index``: ``$.broker.url`` or ``$.broker.urls[1]``."""
        return f"$.broker.urls[{index}]" if self.urls is not None else "$.broker.url"

    def __post_init__(self) -> None:
        _absolute(self, "password_file", "ca_file", "cert_file", "key_file")
        if self.url is not None and self.urls is not None:
            raise ValueError(
                "url and urls exclude each other: url names the one broker node, urls every"
                " node of a cluster; keep one of them"
            )
        for index, url in enumerate(self.nodes):
            _check_node(self.node_key(index).removeprefix("$.broker."), url, self.allow_plaintext)
        _check_same_identity(self.nodes)


def _check_node(key: str, url: str, allow_plaintext: bool) -> None:
    """Raises: ValueError: no amqp(s):// URL, or plain amqp:// to another machine
    without ``allow_plaintext`` (``key``: ``url`` or ``urls[N]``)."""
    try:
        why = scheme_refusal(key, url, ("amqps", "amqp"), allow_plaintext=allow_plaintext,
                             what="the broker password")  # fmt: skip
    except WrongScheme as exc:
        where = "" if key == "url" else f"{key}: "
        raise ValueError(f"{where}{exc}") from None
    if why:
        raise ValueError(why)


def url_identity(url: str) -> tuple[str, str, str]:
    """(user, password, vhost) of an AMQP URL, as pika reads them."""
    parts = urlsplit(url)
    path = parts.path
    vhost = unquote(path[1:]) if len(path) > 1 else "/"
    return unquote(parts.username or "guest"), unquote(parts.password or ""), vhost


def _check_same_identity(urls: tuple[str, ...]) -> None:
    """Raises: ValueError: two nodes of the cluster name another user, password or vhost,
    or one node twice."""
    first = url_identity(urls[0])
    where = [(urlsplit(url).hostname, urlsplit(url).port) for url in urls]
    for index, url in enumerate(urls[1:], start=1):
        if where[index] in where[:index]:
            again = where.index(where[index])
            raise ValueError(f"urls[{index}] names the node of urls[{again}] again: list each once")
        # Three each (zip's strict= is 3.10's).
        pairs = zip(("user", "password", "vhost"), first, url_identity(url))
        differ = [what for what, mine, theirs in pairs if mine != theirs]
        if differ:
            raise ValueError(
                f"urls[{index}] has another {' and '.join(differ)} than urls[0]: every node of"
                " a cluster takes the same user, password (or password_file) and vhost, since"
                " the cluster shares its users and vhosts"
            )


class HostConfig(_Section, frozen=True):
    name: Optional[Annotated[str, msgspec.Meta(min_length=1, max_length=253)]] = None
    # The records root writes at each session's end, which `loginwatch-hook flush` recovers
    # logouts from (producer/sessions.py); "" reads none. A missing file is no error.
    wtmp: str = "/var/log/wtmp"
    wtmpdb: str = "/var/lib/wtmpdb/wtmp.db"

    def __post_init__(self) -> None:
        _absolute(self, *(key for key in ("wtmp", "wtmpdb") if getattr(self, key)))


class SpoolConfig(_Section, frozen=True):
    dir: str = "/var/spool/loginwatch"
    max_events: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    max_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        _absolute(self, "dir")


class SmtpConfig(_Section, frozen=True, rename={"from_": "from"}):
    host: str = "localhost"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 25
    from_: Email = "loginwatch@localhost"
    starttls: bool = False
    ssl: bool = False
    username: Optional[str] = None
    password_file: Optional[str] = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 15.0
    ca_file: Optional[str] = None
    # A relay off loopback without starttls or ssl: every alert (and the password) in
    # clear text, and a relay in the middle may answer 250 and drop it; only if this says so.
    allow_plaintext: bool = False

    def __post_init__(self) -> None:
        _absolute(self, "password_file", "ca_file")
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other")
        why = smtp_refusal("host", self.host, starttls=self.starttls, ssl=self.ssl,
                           allow_plaintext=self.allow_plaintext)  # fmt: skip
        if why:
            raise ValueError(why)


def _check_networks(networks: tuple[str, ...]) -> None:
    """Raises: ValueError: an entry of ``sources`` is no network (``192.0.2.0/24``)."""
    for index, source in enumerate(networks):
        try:
            ipaddress.ip_network(source, strict=False)
        except ValueError:
            raise ValueError(f"sources[{index}]: {source!r} is no network (192.0.2.0/24,"
                             " 2001:db8::/32, or one address)") from None  # fmt: skip


def _check_recipients(recipients: tuple[str, ...]) -> None:
    """Raises: ValueError: an entry of ``to`` is neither an address nor ``receiver:NAME``."""
    for index, recipient in enumerate(recipients):
        why = recipient_problem(recipient)
        if why:
            raise ValueError(f"to[{index}]: {why}")


class Route(_Section, frozen=True):
    """``[[route]]``: who gets mail (or a receiver's notice) for which events, and how.

    ``to`` holds addresses and receivers (``receiver:NAME``, a ``[receiver.NAME]`` section).

    Every route whose globs all match applies (all-matches); an empty glob list
    matches everything. A recipient named by several matching routes is decided
    by the first of them, so an earlier ``mode = "ignore"`` route can exempt one
    recipient from a later catch-all. Globs are fnmatch patterns (``*``, ``?``,
    ``[ab]``) over the literal host (case-insensitive), user and kind
    (login, logout, failure, auth, account, password, unknown; and the system alerts'
    host-flooding, login-dropped: consumer/core/routing.py ``system_routes``).
    """

    to: Annotated[tuple[Recipient, ...], msgspec.Meta(min_length=1)]
    mode: Literal["immediate", "digest", "ignore"] = "immediate"
    hosts: tuple[Glob, ...] = ()
    users: tuple[Glob, ...] = ()
    kinds: tuple[Glob, ...] = ()
    # PAM services (globs over the event's service: "sshd", "sudo", "su", "login"); an
    # empty list matches every service (docs/routing-and-mail.md: the upgrade note).
    services: tuple[Glob, ...] = ()
    # Expected logins (docs/actions.md): the client address in one of these networks, the
    # SSH key's SHA256 fingerprint one of these. An event without either matches neither.
    sources: tuple[str, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()
    # Ask the user who logged in (a successful login only) "was this you?" ([notify_user]).
    ask: bool = False
    # This route's recipients hear every "No, it wasn't me" at once.
    escalate: bool = False
    # An immediate route's su/sudo events mail at once only when they are an escalation
    # (to root, tied to its login); the others go to the digest.
    escalation_only: bool = False

    def __post_init__(self) -> None:
        _check_recipients(self.to)
        _check_networks(self.sources)


class Silence(_Section, frozen=True):
    """``[[silence]]``: no immediate mail for matching events until ``until``.

    Silenced events still reach the digest (marked silenced). All given
    matchers must match; at least one is required. ``sources`` are networks
    (``"192.0.2.0/24"``); ``to`` limits the silence to some recipients.
    """

    until: datetime
    hosts: tuple[Glob, ...] = ()
    users: tuple[Glob, ...] = ()
    kinds: tuple[Glob, ...] = ()
    sources: tuple[str, ...] = ()
    to: tuple[Recipient, ...] = ()
    comment: Annotated[str, msgspec.Meta(max_length=500)] = ""
    fingerprints: tuple[Fingerprint, ...] = ()
    services: tuple[Glob, ...] = ()

    def __post_init__(self) -> None:
        _check_recipients(self.to)
        if self.until.tzinfo is None:
            raise ValueError("until needs a time zone offset, e.g. 2026-12-01T18:00:00Z")
        if not (
            self.hosts
            or self.users
            or self.kinds
            or self.sources
            or self.fingerprints
            or self.services
        ):
            raise ValueError(
                "a silence needs at least one of hosts, users, kinds, sources,"
                " fingerprints, services"
            )
        _check_networks(self.sources)


class PolicyConfig(_Section, frozen=True):
    """``[policy]``: flood control (all workers together), one budget per recipient, host
    and kind, under a fleet-wide cap per recipient and kind."""

    # Past this many immediate mails to one recipient about one host and one kind of event
    # within flood_window, one "burst" mail goes out and further such events only reach the
    # digest: failed passwords never use up the budget of logins, nor one host another's.
    flood_max: Annotated[int, msgspec.Meta(ge=1)] = 10
    flood_window: Duration = Duration("10m")
    # The same for one kind of event from all hosts together (a relay or the central user
    # may speak for many host names). More than flood_max + 1, the most one host can add;
    # none: five hosts' worth, 5 * (flood_max + 1).
    flood_max_fleet: Optional[Annotated[int, msgspec.Meta(ge=3)]] = None

    @property
    def fleet_max(self) -> int:
        """``flood_max_fleet``, or its default."""
        return self.flood_max_fleet or 5 * (self.flood_max + 1)

    def __post_init__(self) -> None:
        if self.flood_max_fleet is not None and self.flood_max_fleet <= self.flood_max + 1:
            raise ValueError(
                f"flood_max_fleet ({self.flood_max_fleet}) must be more than flood_max + 1"
                f" ({self.flood_max + 1}), or one host's flood folds every other host's alerts"
            )


class EnrichConfig(_Section, frozen=True):
    """``[enrich]``: reverse DNS and GeoIP of the client address."""

    dns: bool = True
    # Seconds for all lookups of one address together: the PTR query and the forward
    # query of every name it returns.
    dns_timeout: Annotated[float, msgspec.Meta(gt=0, le=30)] = 1.0
    dns_cache_size: Annotated[int, msgspec.Meta(ge=0)] = 4096
    dns_cache_ttl: Duration = Duration("1h")
    # How long "no name" is remembered: NXDOMAIN per address (per /64 for IPv6); a timeout,
    # a SERVFAIL or a slow answer (over half of dns_timeout) for the whole /24 or /64.
    dns_negative_ttl: Duration = Duration("10m")
    # A source is familiar to a host that never saw the user log in from it only once this
    # many other hosts did: one compromised host cannot make an address familiar fleet-wide.
    first_seen_hosts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 2
    # A MaxMind GeoLite2/GeoIP2 City or Country database (.mmdb); none: no GeoIP.
    geoip_db: Optional[str] = None
    # Impossible travel: a user's successive logins (any hosts) that imply a speed above
    # this, once both places' accuracy radii are allowed for (a City database only).
    max_kmh: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 900.0


class DetectConfig(_Section, frozen=True):
    """``[detect]``: what an intruder does next (consumer/detect/)."""

    # A login from a source that failed against this host (or the fleet) within this
    # window says "after N failed passwords from this address in the last …".
    brute_window: Duration = Duration("10m")
    # Fewer failures than this before a login are a typo, not a brute force.
    brute_min: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 3
    # A login to B from one of A's addresses within this long of the same user's login
    # on A is a hop through A (a jump host): B's alert names the original client.
    hop_window: Duration = Duration("5s")

    def __post_init__(self) -> None:
        if not 0 < self.hop_window.seconds <= 300:
            raise ValueError("hop_window must be more than 0s and at most 5m")
        if not 60 <= self.brute_window.seconds <= 86400:
            raise ValueError("brute_window must be at least 1m and at most 1d")


class HostsConfig(_Section, frozen=True):
    """``[hosts]``: the watch on hosts that stop reporting (heartbeats)."""

    # A host silent for longer than this raises one system alert, and a digest line
    # until it reports again.
    quiet_after: Duration = Duration("2h")
    # How often each worker looks for quiet hosts (one indexed read of the hosts table).
    check_every: Duration = Duration("1m")

    def __post_init__(self) -> None:
        if not 1 <= self.check_every.seconds <= 3600:
            raise ValueError("check_every must be at least 1s and at most 1h")
        if self.quiet_after.seconds < 300:
            raise ValueError(
                "quiet_after must be at least 5m (hosts send a heartbeat"
                " each flush, every few minutes)"
            )


class RenderConfig(_Section, frozen=True):
    """``[render]``: a directory whose templates override the packaged ones."""

    templates: Optional[str] = None


class StoreConfig(_Section, frozen=True):
    """``[store]``: a SQLite file path (one machine), or a ``postgresql://`` URL that the
    workers and schedulers of several machines share."""

    url: str = "/var/lib/loginwatch/loginwatch.db"
    # The PostgreSQL password, in a file only its reader can read, never in the URL (which
    # `check-config` prints and an error may quote).
    password_file: Optional[str] = None
    keep: Duration = Duration("90d")
    # The CA of the PostgreSQL server's certificate (libpq's sslrootcert); with it, a URL
    # without sslmode asks for verify-full.
    ca_file: Optional[str] = None
    # A PostgreSQL server off loopback without sslmode=verify-full or verify-ca: only if
    # this says so (the password and the store's answers would cross unverified).
    allow_plaintext: bool = False

    def __post_init__(self) -> None:
        _absolute(self, "password_file", "ca_file")
        if self.password_file is not None:
            self._check_password_file()
        if is_postgres(self.url):
            why = postgres_refusal("url", self.url, ca_file=self.ca_file,
                                   allow_plaintext=self.allow_plaintext)  # fmt: skip
            if why:
                raise ValueError(why)
        elif self.ca_file is not None:
            raise ValueError("ca_file is for a PostgreSQL store: url is a SQLite path")

    def _check_password_file(self) -> None:
        if not is_postgres(self.url):
            raise ValueError(
                "password_file is for a PostgreSQL store: url is a SQLite path, which has"
                ' no password (use url = "postgresql://USER@HOST/DB", or drop password_file)'
            )
        parts = urlsplit(self.url)
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise ValueError(
                "url carries a password and password_file is set: keep the password in"
                " password_file only (postgresql://USER@HOST/DB)"
            )


def is_postgres(url: str) -> bool:
    """Whether a ``[store] url`` names a PostgreSQL database (anything else is a SQLite path)."""
    return url.startswith(("postgresql://", "postgres://"))


def store_password(store: StoreConfig) -> str | None:
    """The PostgreSQL password from ``[store] password_file``; None: none is set (the URL,
    ``~/.pgpass`` or ``$PGPASSWORD`` may still carry one, as libpq reads them).

    Raises:
        ConfigError: the password file is missing or too open (naming
            ``$.store.password_file``).
    """
    if store.password_file is None:
        return None
    return read_secret(store.password_file, "$.store.password_file")


_CLOCK = r"([01]\d|2[0-3]):[0-5]\d"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class DigestConfig(_Section, frozen=True):
    """``[digest]``: the periodic summary (``loginwatch digest``, consumer/digest/)."""

    # Window length: a divisor of a day ("1h", "6h") or whole days ("1d", "1w").
    every: Duration = Duration("1d")
    # Where windows start, local time in `timezone` (a zoneinfo name).
    at: Optional[Annotated[str, msgspec.Meta(pattern=rf"^{_CLOCK}$")]] = None
    timezone: str = "UTC"
    # A window without events: "quiet" sends an "all quiet" digest, "skip" sends none.
    empty: Literal["quiet", "skip"] = "quiet"
    # Logins outside these hours (local time) or days are listed on their own.
    working_hours: Annotated[str, msgspec.Meta(pattern=rf"^{_CLOCK}-{_CLOCK}$")] = "08:00-18:00"
    working_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    # A brute-force burst: burst_failures failed passwords from one source within burst_window.
    burst_failures: Annotated[int, msgspec.Meta(ge=2)] = 10
    burst_window: Duration = Duration("5m")
    # Rows per list (hosts, users, sources…) before "and N more".
    top: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    # The scheduler's lease in the store: a standby takes over this long after a crash.
    lease: Duration = Duration("30s")


class WorkerConfig(_Section, frozen=True):
    """``[worker]``: the central worker's runtime (consumer/alerts/worker.py)."""

    # Unacked deliveries the broker hands one worker at a time. They wait their
    # turn unacked: against an SMTP server that never answers each may take
    # (smtp timeout x attempts), and RabbitMQ's consumer_timeout is 30 min.
    prefetch: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    # The same for each alert lane, one speaker's share each: the worker takes what arrived
    # round robin, so a deep prefetch costs the other lanes nothing, and it is what lets a
    # flooding host's lane drain as fast as it fills (prefetch / round trip per worker).
    lane_prefetch: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    # Delays (seconds) of the retry queues a parked alert waits in, in order;
    # each delay is its own queue (`loginwatch.retry.<delay>s`), declared by setup.
    retry_delays: Annotated[
        tuple[Annotated[int, msgspec.Meta(ge=1)], ...], msgspec.Meta(min_length=1, max_length=16)
    ] = (30, 120, 600, 1800)
    # Always: an event from broker user `host-NAME` (`loginwatch host add NAME`) is
    # accepted only for host NAME, one from a `host_users` relay only for the hosts its
    # globs match, one without user_id never; the central side's own broker user (the
    # one in [broker] url) may speak for any host. Strict (true): not even that one,
    # unless `host_users` lists it. See consumer/stages/decode.py.
    require_user_id: bool = False
    # broker user -> host names (globs) it may speak for, beyond `host-<name>`.
    host_users: dict[str, tuple[Glob, ...]] = {}
    # Shedding (consumer/alerts/shedding.py): past speaker_budget refused or flood-folded
    # messages from one broker user within speaker_window, that user's refused messages
    # and failed logins are acked and counted instead of processed (its successful logins
    # are always decided). Of its refused messages, dead_per_speaker per flood still go to
    # the dead queue with their reason, so one host's junk cannot flush the dead queue.
    speaker_budget: Annotated[int, msgspec.Meta(ge=1)] = 100
    speaker_window: Duration = Duration("1m")
    dead_per_speaker: Annotated[int, msgspec.Meta(ge=0)] = 10
    # How often each worker reads the run-time silences and the users' answers from the
    # store (`loginwatch silence add` reaches every worker within it); at most 5s.
    silence_interval: Duration = Duration("2s")

    def __post_init__(self) -> None:
        if not 0 < self.silence_interval.seconds <= 5:
            raise ValueError("silence_interval must be more than 0s and at most 5s")


class MetricsConfig(_Section, frozen=True):
    """``[metrics]``: Prometheus ``/metrics`` of the worker and the digest scheduler."""

    # HOST:PORT, e.g. "127.0.0.1:9464"; none: no TCP endpoint. Any local user may take a
    # port first: a bind failure is a warning, and `status` never reads it.
    # Per process: $LOGINWATCH_METRICS_LISTEN replaces it, $LOGINWATCH_METRICS_PORT_OFFSET
    # (set to N by loginwatch-worker@N.service) adds N to its port.
    listen: Optional[str] = None
    # Where the units' runtime directories are (RuntimeDirectory=loginwatch/worker-%i):
    # each serves metrics.sock there, which is what `loginwatch status` reads.
    runtime_dir: str = "/run/loginwatch"

    def __post_init__(self) -> None:
        _absolute(self, "runtime_dir")
        if self.listen is not None:
            try:
                parse_listen(self.listen)
            except ConfigError:
                raise ValueError(f"listen: expected HOST:PORT, got {self.listen!r}") from None


def parse_listen(listen: str, setting: str = "$.metrics.listen") -> tuple[str, int]:
    """``"127.0.0.1:9464"`` / ``"[::1]:9464"`` → (address, port); port 0: any free port.

    Raises:
        ConfigError: not HOST:PORT (naming ``setting``).
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or not host:
        raise ConfigError(f"{setting}: expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


class Config(_Section, frozen=True):
    broker: BrokerConfig = BrokerConfig()
    host: HostConfig = HostConfig()
    spool: SpoolConfig = SpoolConfig()
    smtp: SmtpConfig = SmtpConfig()
    route: tuple[Route, ...] = ()
    store: StoreConfig = StoreConfig()
    digest: DigestConfig = DigestConfig()
    worker: WorkerConfig = WorkerConfig()
    silence: tuple[Silence, ...] = ()
    policy: PolicyConfig = PolicyConfig()
    enrich: EnrichConfig = EnrichConfig()
    detect: DetectConfig = DetectConfig()
    hosts: HostsConfig = HostsConfig()
    render: RenderConfig = RenderConfig()
    metrics: MetricsConfig = MetricsConfig()
    # [receiver.NAME]: where besides mail notices go (schemas/receivers.py, docs/channels.md).
    receiver: dict[ReceiverName, Receiver] = {}
    # "Was this you?" and loginwatch web (schemas/actions.py, docs/actions.md).
    notify_user: NotifyUserConfig = NotifyUserConfig()
    web: WebConfig = WebConfig()


def _check_references(config: Config, source: str) -> None:
    """Raises: ConfigError: a route or silence names ``receiver:NAME`` that no
    ``[receiver.NAME]`` section defines (naming the key)."""
    named = [(f"route[{i}]", r.to) for i, r in enumerate(config.route)]
    named += [(f"silence[{i}]", s.to) for i, s in enumerate(config.silence)]
    keyed = [(f"{where}.to[{index}]", recipient) for where, recipients in named
             for index, recipient in enumerate(recipients)]  # fmt: skip
    keyed += [(f"notify_user.{key}", target) for key, target in config.notify_user.targets()]
    for where, recipient in keyed:
        name = reference(recipient)
        if name is not None and name not in config.receiver:
            defined = ", ".join(sorted(config.receiver)) or "none"
            raise ConfigError(
                f"{source}: $.{where}: {recipient} names no receiver: add a"
                f" [receiver.{name}] section (defined: {defined})"
            )
    asking = [i for i, route in enumerate(config.route) if route.ask]
    if asking and config.web.base_url is None:
        raise ConfigError(
            f"{source}: $.route[{asking[0]}].ask: asking needs [web] base_url, where the"
            " question's answers go"
        )


def config_path(cli_value: str | None, environ: dict[str, str] | None = None) -> str:
    """``--config PATH``, else ``$LOGINWATCH_CONFIG``, else the default path."""
    env = os.environ if environ is None else environ
    return cli_value or env.get(CONFIG_ENV) or DEFAULT_CONFIG


def parse_config(text: str, source: str = "<config>") -> Config:
    """Decode TOML text into a ``Config``.

    Raises:
        ConfigError: bad TOML or a bad value, naming ``source`` and the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    receivers = _receivers(data.pop("receiver", {}), source)
    try:
        config = msgspec.convert(data, Config, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_key_first(str(exc))}") from None
    config = msgspec.structs.replace(config, receiver=receivers)
    _check_references(config, source)
    return config


def _receivers(sections: object, source: str) -> dict[str, Receiver]:
    """The ``[receiver.NAME]`` sections, one at a time, so that an error names its section
    (``$.receiver.chat.kind``), not msgspec's ``$.receiver[...]``.

    Raises:
        ConfigError: a bad name, kind or value, naming the key.
    """
    if not isinstance(sections, dict):
        raise ConfigError(f"{source}: $.receiver: expected [receiver.NAME] sections")
    found: dict[str, Receiver] = {}
    for name, section in sections.items():
        where = f"$.receiver.{name}"
        if not re.fullmatch(NAME_PATTERN, name):
            raise ConfigError(
                f"{source}: $.receiver: {name!r} cannot name a receiver: lower-case letters,"
                " digits, - and _ (up to 63, starting with a letter or digit)"
            )
        try:
            found[name] = msgspec.convert(section, Receiver, dec_hook=_decode)
        except msgspec.ValidationError as exc:
            said = _key_first(str(exc))
            if said.startswith("$"):  # at a key: "$.kind: …"
                said = said[1:]
            else:  # at the section itself: "Object missing required field `url_file`"
                said = ": " + said[:1].lower() + said[1:].replace("`", "")
            raise ConfigError(f"{source}: {where}{said}") from None
    return found


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and decode the config file at ``path``.

    Raises:
        ConfigError: unreadable file, bad TOML or a bad value.
    """
    return parse_config(read_config_file(path), str(path))


_MSGSPEC_ERROR: Final = re.compile(r"^(?P<what>.*?) - at `(?P<key>[^`]*)`$", re.S)


def _key_first(message: str) -> str:
    """``Expected `int`, got `str` - at `$.smtp.port``` → ``$.smtp.port: expected int, got str``."""
    match = _MSGSPEC_ERROR.match(message)
    if not match:
        return message
    what = match["what"].replace("`", "")
    return f"{match['key']}: {what[:1].lower()}{what[1:]}"
