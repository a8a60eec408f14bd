"""The one TOML configuration file, shared by the hook and the central side.

Decoded into frozen msgspec Structs; unknown keys are errors (a typo must not
silently fall back to a default), and every error names the file and the key:
``/etc/loginwatch/loginwatch.toml: $.smtp.port: expected int, got str``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from datetime import datetime
from typing import Annotated, Final, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import msgspec

from schemas.errors import ConfigError
from schemas.paths import CONFIG_ENV, DEFAULT_CONFIG

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
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s<>]+@[^@\s<>]+$")]


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
    url: str | None = None
    urls: _NodeUrls | None = None
    password_file: str | None = None
    # Each node that refuses or does not answer costs at most this before the next is tried.
    connect_timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # The detached publisher gives up after this long; what it did not get
    # confirmed stays in the spool for the next login or the flush timer.
    publish_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 20.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # amqp:// sends the password in clear text: only to a loopback broker, unless this says so.
    allow_plaintext: bool = False
    # Limits of every loginwatch queue, applied by `loginwatch setup` as a RabbitMQ
    # policy (schemas/topology.py says which queue refuses and which drops its oldest).
    queue_max_length: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    queue_max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 256 * 1024 * 1024

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
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        where = "" if key == "url" else f"{key}: "
        raise ValueError(f"{where}expected an amqp:// or amqps:// URL")
    if parts.scheme == "amqp" and not allow_plaintext and not is_loopback(parts.hostname):
        raise ValueError(
            f"{key} is amqp:// to {parts.hostname}, which would send the broker password"
            " unencrypted: use amqps://, or set allow_plaintext = true"
        )


def _identity(url: str) -> tuple[str, str, str]:
    """(user, password, vhost) of an AMQP URL, as pika reads them."""
    parts = urlsplit(url)
    path = parts.path
    vhost = unquote(path[1:]) if len(path) > 1 else "/"
    return unquote(parts.username or "guest"), unquote(parts.password or ""), vhost


def _check_same_identity(urls: tuple[str, ...]) -> None:
    """Raises: ValueError: two nodes of the cluster name another user, password or vhost,
    or one node twice."""
    first = _identity(urls[0])
    where = [(urlsplit(url).hostname, urlsplit(url).port) for url in urls]
    for index, url in enumerate(urls[1:], start=1):
        if where[index] in where[:index]:
            again = where.index(where[index])
            raise ValueError(f"urls[{index}] names the node of urls[{again}] again: list each once")
        pairs = zip(("user", "password", "vhost"), first, _identity(url), strict=True)
        differ = [what for what, mine, theirs in pairs if mine != theirs]
        if differ:
            raise ValueError(
                f"urls[{index}] has another {' and '.join(differ)} than urls[0]: every node of"
                " a cluster takes the same user, password (or password_file) and vhost, since"
                " the cluster shares its users and vhosts"
            )


def is_loopback(host: str | None) -> bool:
    """Whether a URL's host is this machine: ``localhost``, 127.0.0.0/8 or ``::1``.

    No host at all is pika's default, ``localhost``. A name is never resolved:
    ``localhost.example.org`` or ``127.0.0.1.nip.io`` are somebody else's.
    """
    if not host or host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


class HostConfig(_Section, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=253)] | None = None


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
    username: str | None = None
    password_file: str | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 15.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        _absolute(self, "password_file", "ca_file")
        if self.starttls and self.ssl:
            raise ValueError("starttls and ssl exclude each other")


class Route(_Section, frozen=True):
    """``[[route]]``: who gets mail for which events, and how.

    Every route whose globs all match applies (all-matches); an empty glob list
    matches everything. A recipient named by several matching routes is decided
    by the first of them, so an earlier ``mode = "ignore"`` route can exempt one
    recipient from a later catch-all. Globs are fnmatch patterns (``*``, ``?``,
    ``[ab]``) over the literal host (case-insensitive), user and kind
    (login, logout, failure, auth, account, password, unknown).
    """

    to: Annotated[tuple[Email, ...], msgspec.Meta(min_length=1)]
    mode: Literal["immediate", "digest", "ignore"] = "immediate"
    hosts: tuple[Glob, ...] = ()
    users: tuple[Glob, ...] = ()
    kinds: tuple[Glob, ...] = ()


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
    to: tuple[Email, ...] = ()
    comment: Annotated[str, msgspec.Meta(max_length=500)] = ""

    def __post_init__(self) -> None:
        if self.until.tzinfo is None:
            raise ValueError("until needs a time zone offset, e.g. 2026-12-01T18:00:00Z")
        if not (self.hosts or self.users or self.kinds or self.sources):
            raise ValueError("a silence needs at least one of hosts, users, kinds, sources")
        for source in self.sources:
            ipaddress.ip_network(source, strict=False)


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
    flood_max_fleet: Annotated[int, msgspec.Meta(ge=3)] | None = None

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
    geoip_db: str | None = None


class RenderConfig(_Section, frozen=True):
    """``[render]``: a directory whose templates override the packaged ones."""

    templates: str | None = None


class StoreConfig(_Section, frozen=True):
    """``[store]``: a SQLite file path (one machine), or a ``postgresql://`` URL that the
    workers and schedulers of several machines share."""

    url: str = "/var/lib/loginwatch/loginwatch.db"
    # The PostgreSQL password, in a file only its reader can read, never in the URL (which
    # `check-config` prints and an error may quote).
    password_file: str | None = None
    keep: Duration = Duration("90d")

    def __post_init__(self) -> None:
        _absolute(self, "password_file")
        if self.password_file is None:
            return
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
    at: Annotated[str, msgspec.Meta(pattern=rf"^{_CLOCK}$")] | None = None
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
    """``[worker]``: the central worker's runtime (consumer/worker.py)."""

    # Unacked deliveries the broker hands one worker at a time. They wait their
    # turn unacked: against an SMTP server that never answers each may take
    # (smtp timeout x attempts), and RabbitMQ's consumer_timeout is 30 min.
    prefetch: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
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


class MetricsConfig(_Section, frozen=True):
    """``[metrics]``: Prometheus ``/metrics`` of the worker and the digest scheduler."""

    # HOST:PORT, e.g. "127.0.0.1:9464"; none: no metrics endpoint.
    # Per process: $LOGINWATCH_METRICS_LISTEN replaces it, $LOGINWATCH_METRICS_PORT_OFFSET
    # (set to N by loginwatch-worker@N.service) adds N to its port.
    listen: str | None = None


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
    render: RenderConfig = RenderConfig()
    metrics: MetricsConfig = MetricsConfig()


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
    try:
        return msgspec.convert(data, Config, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_key_first(str(exc))}") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and decode the config file at ``path``.

    Raises:
        ConfigError: unreadable file, bad TOML or a bad value.
    """
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the reader (the hook, as root).
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    try:
        _check_config_file(os.fspath(path), os.fstat(fd))
        with os.fdopen(fd, "rb", closefd=False) as file:
            # One byte past the bound tells a huge file from one that fits.
            raw = file.read(CONFIG_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    finally:
        os.close(fd)
    if len(raw) > CONFIG_LIMIT:
        raise ConfigError(f"{path}: longer than {CONFIG_LIMIT} bytes: not a loginwatch config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return parse_config(text, str(path))


# A config is a few KiB; the bound keeps a wrong --config (a log, a device) from
# costing the hook its time or memory.
CONFIG_LIMIT: Final = 1024 * 1024


def _check_config_file(path: str, st: os.stat_result) -> None:
    """Refuse a config that someone other than root (or its reader) could change.

    The hook runs as root and takes from this file where to spool, which broker
    to tell and which file to send as the password: a user who can write it, or
    swap it in a directory they can write, could silence the alerts about
    their own logins or have root read and send another root file.

    Raises:
        ConfigError: no regular file, or it or a directory on its real path is
            owned by another user or writable by group or others.
    """
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: cannot read config: not a regular file")
    why = _controlled_by_others(st, path)
    if why:
        raise ConfigError(f"{path}: cannot use config: {why}")
    why = _swappable(path, st)
    if why:
        raise ConfigError(f"{path}: cannot use config: {why}")


def _swappable(path: str, st: os.stat_result) -> str:
    """Why someone else could put another file at ``path`` ('' when no one can).

    Follows the path name by name as the kernel does: every directory passed
    through, and every symlink (its owner, and its target, in turn), must be
    root's or ours and not writable by others; the end must be the file
    ``st`` describes (the one opened).
    """
    hops = [0]
    try:
        end = _walk("/", os.path.abspath(path), hops)
    except _Swappable as exc:
        return str(exc)
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror}"
    if (end.st_dev, end.st_ino) != (st.st_dev, st.st_ino):
        return "it was replaced while being read"
    return ""


class _Swappable(Exception):
    pass


def _walk(directory: str, path: str, hops: list[int]) -> os.stat_result:
    """Resolve ``path`` (absolute, or relative to ``directory``), checking each step."""
    if path.startswith("/"):
        directory = "/"
        _checked_dir(directory)
    names = [name for name in path.split("/") if name not in ("", ".")]
    st = os.lstat(directory)
    for index, name in enumerate(names):
        here = os.path.dirname(directory) if name == ".." else os.path.join(directory, name)
        st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode):
            hops[0] += 1
            if hops[0] > 40:
                raise _Swappable(f"{here}: too many symlinks")
            if st.st_uid not in (0, os.geteuid()):
                raise _Swappable(f"{here} is a symlink owned by {_user(st.st_uid)}")
            st = _walk(directory, os.readlink(here), hops)
            here = os.path.realpath(here)
        last = index == len(names) - 1
        if not last:
            _checked_dir(here)
        directory = here
    return os.stat(directory) if stat.S_ISLNK(st.st_mode) else st


def _checked_dir(directory: str) -> None:
    why = _controlled_by_others(os.stat(directory), directory, sticky_ok=True)
    if why:
        raise _Swappable(why)


def _controlled_by_others(st: os.stat_result, path: str, sticky_ok: bool = False) -> str:
    """Why someone other than root or us could change ``path`` ('' when no one can)."""
    reader = os.geteuid()
    if st.st_uid not in (0, reader):
        return f"{path} is owned by {_user(st.st_uid)}, not by root: chown root {path}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return (
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}):"
            f" chmod go-w {path}"
        )
    return ""


_MSGSPEC_ERROR: Final = re.compile(r"^(?P<what>.*?) - at `(?P<key>[^`]*)`$", re.S)


def _key_first(message: str) -> str:
    """``Expected `int`, got `str` - at `$.smtp.port``` → ``$.smtp.port: expected int, got str``."""
    match = _MSGSPEC_ERROR.match(message)
    if not match:
        return message
    what = match["what"].replace("`", "")
    return f"{match['key']}: {what[:1].lower()}{what[1:]}"


# The central side's service user: root may use its secrets (`loginwatch setup`
# run as root reads the central password file, which the worker, as this user, owns).
SERVICE_USER: Final = "loginwatch"


def read_secret(path: str, key: str) -> str:
    """The first line of a secret file that only its owner, the reader, may read.

    Raises:
        ConfigError: missing file, no regular file, one owned by another user,
            or one that group or others can read, naming ``key``
            (e.g. ``$.smtp.password_file``).
    """
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        _check_secret(path, key, st)
        raw = os.read(fd, 4096)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return raw.decode("utf-8", "replace").splitlines()[0] if raw.strip() else ""


def _check_secret(path: str, key: str, st: os.stat_result) -> None:
    """Raises: ConfigError: the file is no regular file, not ours, or too open."""
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{key}: {path} is not a regular file")
    reader = os.geteuid()
    if st.st_uid != reader and not (reader == 0 and st.st_uid == _service_uid()):
        raise ConfigError(
            f"{key}: {path} is owned by {_user(st.st_uid)}, not by {_user(reader)} who reads it:"
            " chown it, or run as its owner"
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{key}: {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o});"
            " chmod 600 it"
        )
    # In a directory others can write, they could swap in a symlink to another
    # root-only file, whose first line root would then send as the password.
    why = _swappable(path, st)
    if why:
        raise ConfigError(f"{key}: {path}: {why}")


def _service_uid() -> int | None:
    import pwd  # noqa: PLC0415 - only where a secret is read

    try:
        return pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        return None


def _user(uid: int) -> str:
    import pwd  # noqa: PLC0415

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


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
    return _identity(broker.nodes[0])[0]


def broker_vhost(broker: BrokerConfig) -> str:
    """The vhost the URLs name (``/`` when the path is empty; the same on every node)."""
    return _identity(broker.nodes[0])[2]


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
    every connection its runtime opens in turn (``consumer.broker.node_cursor``)."""

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
