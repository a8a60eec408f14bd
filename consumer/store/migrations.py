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
    Migration(
        8,
        "quotas: first-seen expires by its last sighting; rows per host and day, counted",
        (
            # Pruning finds expired sources by their last sighting ([store] keep), in batches.
            "CREATE INDEX first_seen_last ON first_seen (last_at)",
            "CREATE INDEX first_seen_host_last ON first_seen_host (last_at)",
            # What each host added to the store per UTC day (`what`: first_seen, events) and
            # what it was refused past its cap (consumer/store/quota.py). Kept [store] keep.
            """CREATE TABLE store_quota (
                host TEXT NOT NULL,
                day BIGINT NOT NULL,
                what TEXT NOT NULL,
                stored BIGINT NOT NULL,
                over BIGINT NOT NULL,
                PRIMARY KEY (host, day, what)
            )""",
            "CREATE INDEX store_quota_day ON store_quota (day)",
        ),
    ),
    Migration(
        9,
        "run-time silences and acks, questions and answers, the web service's state",
        (
            # A silence or an ack (`kind`), made with the CLI or the web page; `matchers`
            # and `recipients` are JSON lists (consumer/silences/table.py). `expired_at`
            # set: ended early by someone (`expired_by`). Kept [store] keep after its end.
            """CREATE TABLE silence (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                matchers TEXT NOT NULL,
                recipients TEXT NOT NULL,
                starts_at DOUBLE PRECISION NOT NULL,
                ends_at DOUBLE PRECISION NOT NULL,
                comment TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expired_at DOUBLE PRECISION,
                expired_by TEXT NOT NULL DEFAULT '',
                event_id TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX silence_ends ON silence (ends_at)",
            "CREATE INDEX silence_creator ON silence (created_by, ends_at)",
            # One "was this you?" per login event (`id` is the event's id), to `asked`.
            # `verdict`: '' (unanswered), 'yes' or 'no' (a no is never overwritten);
            # `flag`: 'likely-scanner' when a yes and a no came within seconds.
            """CREATE TABLE question (
                id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                username TEXT NOT NULL,
                client_ip TEXT NOT NULL,
                client_port BIGINT NOT NULL,
                fingerprint TEXT NOT NULL,
                login_at DOUBLE PRECISION NOT NULL,
                asked TEXT NOT NULL,
                asked_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                verdict TEXT NOT NULL DEFAULT '',
                flag TEXT NOT NULL DEFAULT '',
                answered_at DOUBLE PRECISION,
                escalated_at DOUBLE PRECISION
            )""",
            "CREATE INDEX question_asked ON question (asked_at)",
            "CREATE INDEX question_subject ON question (host, username, client_ip)",
            "CREATE INDEX question_answered ON question (answered_at)",
            # Every answer, with the client and time it came from. A link answers once
            # (its token id), and a question has two links: two rows at most.
            """CREATE TABLE answer (
                question_id TEXT NOT NULL,
                token_id TEXT NOT NULL,
                answer TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                client TEXT NOT NULL,
                agent TEXT NOT NULL,
                PRIMARY KEY (question_id, token_id)
            )""",
            "CREATE INDEX answer_at ON answer (at)",
            # Spent single-use values: form nonces and link ids, kept until they expire.
            """CREATE TABLE web_nonce (
                nonce TEXT PRIMARY KEY,
                purpose TEXT NOT NULL,
                used_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX web_nonce_expires ON web_nonce (expires_at)",
            # Operators' sessions: the SHA-256 of the cookie's value, never the value.
            """CREATE TABLE web_session (
                id_hash TEXT PRIMARY KEY,
                operator TEXT NOT NULL,
                csrf TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                client TEXT NOT NULL
            )""",
            "CREATE INDEX web_session_operator ON web_session (operator, expires_at)",
            "CREATE INDEX web_session_expires ON web_session (expires_at)",
            # Sign-in state per operator name: failures in the current window, last sign-in.
            """CREATE TABLE web_operator (
                name TEXT PRIMARY KEY,
                failures BIGINT NOT NULL,
                failed_at DOUBLE PRECISION NOT NULL,
                signed_in_at DOUBLE PRECISION,
                seen_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX web_operator_seen ON web_operator (seen_at)",
            # Expected logins: the digest keeps each login's key fingerprint.
            "ALTER TABLE digest_event ADD COLUMN fingerprint TEXT NOT NULL DEFAULT ''",
        ),
    ),
    Migration(
        10,
        "hosts: each host's last event and the host-side version it reported",
        (
            # Written by the worker for every batch (consumer/store/hosts.py), read by
            # `loginwatch status`: which versions a fleet runs while it upgrades.
            """CREATE TABLE hosts (
                name TEXT PRIMARY KEY,
                last_event DOUBLE PRECISION NOT NULL,
                hook_version TEXT NOT NULL
            )""",
            "CREATE INDEX hosts_last_event ON hosts (last_event)",
        ),
    ),
    Migration(
        11,
        "failed logins per host, source and minute (consumer/store/failures.py)",
        (
            """CREATE TABLE source_failures (
                host TEXT NOT NULL,
                source TEXT NOT NULL,
                slot BIGINT NOT NULL,
                failures BIGINT NOT NULL,
                PRIMARY KEY (host, source, slot)
            )""",
            "CREATE INDEX source_failures_source ON source_failures (source, slot)",
            "CREATE INDEX source_failures_slot ON source_failures (slot)",
        ),
    ),
    Migration(
        12,
        "detections: last place per user, logins' sessions, heartbeats, the service per event",
        (
            # Each user's latest login with GeoIP coordinates (consumer/store/places.py), for
            # impossible travel; one row per user, written under the host's first-seen quota.
            """CREATE TABLE user_place (
                username TEXT PRIMARY KEY,
                latitude DOUBLE PRECISION NOT NULL,
                longitude DOUBLE PRECISION NOT NULL,
                radius DOUBLE PRECISION NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                host TEXT NOT NULL,
                address TEXT NOT NULL,
                network TEXT NOT NULL,
                place TEXT NOT NULL,
                seen_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX user_place_seen ON user_place (seen_at)",
            # A login's session as its host names it (consumer/store/sessions.py): `link` is
            # "audit:N" (the kernel's audit session) or "pid:N" (sshd's session process), so a
            # su/sudo or a logout of that session finds its login. Bounded per host and day.
            """CREATE TABLE login_link (
                host TEXT NOT NULL,
                link TEXT NOT NULL,
                event_id TEXT NOT NULL,
                username TEXT NOT NULL,
                service TEXT NOT NULL,
                source TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                seen_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (host, link)
            )""",
            "CREATE INDEX login_link_seen ON login_link (seen_at)",
            "CREATE INDEX login_link_user ON login_link (username, at)",
            # Heartbeats (consumer/store/hosts.py): the host's own word on its spool and
            # addresses, a goodbye when it was stopped cleanly, retired by an operator, and
            # when the quiet-host alert went out (one per silence).
            "ALTER TABLE hosts ADD COLUMN heartbeat_at DOUBLE PRECISION",
            "ALTER TABLE hosts ADD COLUMN spool_depth BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE hosts ADD COLUMN dropped BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE hosts ADD COLUMN addresses TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE hosts ADD COLUMN goodbye_at DOUBLE PRECISION",
            "ALTER TABLE hosts ADD COLUMN goodbye_why TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE hosts ADD COLUMN retired_at DOUBLE PRECISION",
            "ALTER TABLE hosts ADD COLUMN quiet_alerted_at DOUBLE PRECISION",
            # Each host's own addresses from its last heartbeat (at most 32): a login from one
            # of them to another host is a hop through it (consumer/detect/hops.py).
            """CREATE TABLE host_address (
                address TEXT NOT NULL,
                host TEXT NOT NULL,
                seen_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (address, host)
            )""",
            "CREATE INDEX host_address_host ON host_address (host)",
            # The PAM service of each digest event (sshd, sudo…), and a logout's session.
            "ALTER TABLE digest_event ADD COLUMN service TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE digest_event ADD COLUMN session_seconds DOUBLE PRECISION",
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
