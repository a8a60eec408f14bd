"""The store: first-seen sources, the sent log, flood counters, failed logins per source,
each host's last event, version and heartbeat (``hosts.py``), each user's last place
(``places.py``) and each login's session links (``sessions.py``), in SQLite or PostgreSQL.

``open_store(url)``: a file path (default; SQLite in WAL mode) or a ``postgresql://`` URL
(psycopg 3), so workers and digest schedulers on several machines share one store. Both get
the same schema from the same versioned migration list (``consumer/store/migrations.py``),
applied on open, to which later features append. What each host may add a day
(``quota.py``) and when everything ends (``retention.py``: ``[store] keep``, in batches).

Imports from consumer: core (never alerts, broker, channels, commands, detect, digest,
lookups, questions, silences, stages, web).
"""

from __future__ import annotations

from consumer.store.store import (
    Beat,
    HostReport,
    HostRow,
    Sighting,
    Store,
    StoreBatch,
    open_store,
)

__all__ = ["Beat", "HostReport", "HostRow", "Sighting", "Store", "StoreBatch", "open_store"]
