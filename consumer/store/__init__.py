"""The store: first-seen sources, the sent log and flood counters, in SQLite or PostgreSQL.

``open_store(url)``: a file path (default; SQLite in WAL mode) or a ``postgresql://`` URL
(psycopg 3), so workers and digest schedulers on several machines share one store. Both get
the same schema from the same versioned migration list (``consumer/store/migrations.py``),
applied on open, to which later features append.
"""

from __future__ import annotations

from consumer.store.store import Sighting, Store, StoreBatch, open_store

__all__ = ["Sighting", "Store", "StoreBatch", "open_store"]
