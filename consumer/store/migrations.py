"""The store's schema as an append-only list of versioned migrations, for SQLite and PostgreSQL.

Rules: never edit or reorder a migration that has shipped; append a new one with the next
version. Each migration is a list of statements run in one transaction; ``sql`` serves both
databases unless ``postgres`` / ``sqlite`` give a dialect's own text. Keep to the common
subset where possible: TEXT, BIGINT, DOUBLE PRECISION (times are Unix seconds, UTC),
INTEGER 0/1 for booleans, ``INSERT … ON CONFLICT``, ``RETURNING``.

The digest scheduler (issue 4) appends its event and window tables here.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Migration(NamedTuple):
    version: int
    name: str
    sql: tuple[str, ...]
    postgres: tuple[str, ...] | None = None
    sqlite: tuple[str, ...] | None = None

    def statements(self, dialect: str) -> tuple[str, ...]:
        own = self.postgres if dialect == "postgres" else self.sqlite
        return self.sql if own is None else own


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "first-seen sources, sent log, flood counters",
        (
            # One row per (user, scope, value); event_id is the event that created it, so a
            # redelivered event still reads as first-seen (see Store.observe).
            """CREATE TABLE first_seen (
                username TEXT NOT NULL,
                scope TEXT NOT NULL,
                value TEXT NOT NULL,
                event_id TEXT NOT NULL,
                first_at DOUBLE PRECISION NOT NULL,
                last_at DOUBLE PRECISION NOT NULL,
                logins BIGINT NOT NULL DEFAULT 1,
                PRIMARY KEY (username, scope, value)
            )""",
            """CREATE TABLE delivery_log (
                key TEXT PRIMARY KEY,
                delivered_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX delivery_log_at ON delivery_log (delivered_at)",
            """CREATE TABLE flood_mail (
                recipient TEXT NOT NULL,
                sent_at DOUBLE PRECISION NOT NULL,
                burst INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX flood_mail_at ON flood_mail (sent_at, recipient)",
        ),
    ),
    Migration(
        2,
        "decision log: what flood control and silences kept out of the inbox",
        (
            # The digest reports these per recipient and window ("silenced", "folded").
            """CREATE TABLE decision_log (
                event_id TEXT NOT NULL,
                recipient TEXT NOT NULL,
                action TEXT NOT NULL,
                reason TEXT NOT NULL,
                decided_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (event_id, recipient)
            )""",
            "CREATE INDEX decision_log_at ON decision_log (decided_at, recipient)",
        ),
    ),
    Migration(
        3,
        "digest: stored events, window states, send-now cuts, the scheduler lease",
        (
            # One row per event (idempotent on event_id). `at` is the event's time, clamped
            # into the window that was open when it arrived (a late event is reported in the
            # next digest, never lost); `audience` lists the recipients, space-separated.
            """CREATE TABLE digest_event (
                event_id TEXT PRIMARY KEY,
                at BIGINT NOT NULL,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                kind TEXT NOT NULL,
                client_ip TEXT NOT NULL,
                rhost TEXT NOT NULL,
                auth_method TEXT NOT NULL,
                dropped BIGINT NOT NULL,
                audience TEXT NOT NULL
            )""",
            "CREATE INDEX digest_event_at ON digest_event (at)",
            # open -> sending -> sent (or skipped) per window and recipient.
            """CREATE TABLE digest_send (
                window_key TEXT NOT NULL,
                recipient TEXT NOT NULL,
                start_at BIGINT NOT NULL,
                end_at BIGINT NOT NULL,
                state TEXT NOT NULL,
                owner TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (window_key, recipient)
            )""",
            "CREATE INDEX digest_send_end ON digest_send (end_at)",
            "CREATE TABLE digest_cut (at BIGINT PRIMARY KEY)",
            # When the first scheduler started: no digest for windows that ended before.
            "CREATE TABLE digest_anchor (name TEXT PRIMARY KEY, at BIGINT NOT NULL)",
            """CREATE TABLE digest_lease (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "flood counts per recipient in 10-second slots (a row per mail made each count O(mails))",
        (
            """CREATE TABLE flood_count (
                recipient TEXT NOT NULL,
                slot BIGINT NOT NULL,
                sent BIGINT NOT NULL,
                burst INTEGER NOT NULL,
                PRIMARY KEY (recipient, slot)
            )""",
            "CREATE INDEX flood_count_slot ON flood_count (slot)",
            # The counts of the flood window in progress carry over.
            """INSERT INTO flood_count (recipient, slot, sent, burst)
               SELECT recipient, CAST(sent_at AS BIGINT) / 10, COUNT(*), MAX(burst)
               FROM flood_mail GROUP BY recipient, CAST(sent_at AS BIGINT) / 10""",
            "DROP TABLE flood_mail",
        ),
    ),
    Migration(
        5,
        "flood budgets per recipient, host and kind (and per kind fleet-wide); first-seen per host",
        (
            # scope 'host': one recipient, host (lower-cased) and kind; scope 'fleet': one
            # recipient and kind, all hosts (host ''). `burst`: that budget's burst mail went.
            # The per-recipient counts of migration 4 cannot be split by host and kind: they
            # are dropped, so each budget starts empty (at most one window of extra mail).
            """CREATE TABLE flood_budget (
                kind TEXT NOT NULL,
                scope TEXT NOT NULL,
                host TEXT NOT NULL,
                recipient TEXT NOT NULL,
                slot BIGINT NOT NULL,
                sent BIGINT NOT NULL,
                burst INTEGER NOT NULL,
                PRIMARY KEY (kind, scope, host, recipient, slot)
            )""",
            "CREATE INDEX flood_budget_slot ON flood_budget (slot)",
            "DROP TABLE flood_count",
            # Which hosts reported a user's login from a source. `novel` is the verdict the
            # row's first event got (a redelivery reads it back): the source was new to this
            # host and fewer than [enrich] first_seen_hosts other hosts had reported it.
            """CREATE TABLE first_seen_host (
                username TEXT NOT NULL,
                scope TEXT NOT NULL,
                value TEXT NOT NULL,
                host TEXT NOT NULL,
                event_id TEXT NOT NULL,
                novel INTEGER NOT NULL,
                first_at DOUBLE PRECISION NOT NULL,
                last_at DOUBLE PRECISION NOT NULL,
                logins BIGINT NOT NULL DEFAULT 1,
                PRIMARY KEY (username, scope, value, host)
            )""",
            # Existing first-seen rows keep their sources familiar to the host that made them
            # where the digest stored that event (the only place the host is known); other
            # sources read as new once per host after the upgrade. `host` is lower-cased
            # (SQLite's LOWER folds ASCII only, so a non-ASCII name may read as new once).
            """INSERT INTO first_seen_host
                   (username, scope, value, host, event_id, novel, first_at, last_at, logins)
               SELECT f.username, f.scope, f.value, LOWER(e.host), f.event_id, 1, f.first_at,
                      f.last_at, f.logins
               FROM first_seen f JOIN digest_event e ON e.event_id = f.event_id""",
        ),
    ),
    Migration(
        6,
        "digest: when each event arrived and the time its host claimed; dropped clamped",
        (
            # `at` stays where the event is counted (its arrival window); these two let the
            # digest say which host's clock is off. Events stored before: as if on time.
            "ALTER TABLE digest_event ADD COLUMN arrived_at BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE digest_event ADD COLUMN host_at BIGINT NOT NULL DEFAULT 0",
            "UPDATE digest_event SET arrived_at = at, host_at = at",
            # A host's dropped counter, as DigestStore.add_events now bounds it (MAX_DROPPED):
            # two stored 2^62 overflowed SQLite's SUM and blocked that window's digest.
            "UPDATE digest_event SET dropped = 2147483647 WHERE dropped > 2147483647",
            "UPDATE digest_event SET dropped = 0 WHERE dropped < 0",
        ),
    ),
    Migration(
        7,
        "first-seen: a relay's report counts for its host, never as a vote for the others",
        (
            # 0: reported by a relay ([worker.host_users]) speaking for the host. One relay
            # may speak for many names, so its rows are no votes: else it could invent two
            # hosts and make an address familiar on every host. Rows before: votes.
            "ALTER TABLE first_seen_host ADD COLUMN votes INTEGER NOT NULL DEFAULT 1",
        ),
    ),
)


def check(migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    """Versions must run 1, 2, 3…: a gap or a duplicate is a programming error.

    Raises:
        AssertionError: the list is not 1..N in order.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise AssertionError(f"migration versions must be 1..N in order, got {versions}")
