"""The digest scheduler (``loginwatch digest``): store events, send one summary per window.

``windows`` (pure window math) → ``intake`` (events → stored rows) → ``tables`` (its
tables, lease and window states) → ``aggregate`` (SQL per window and recipient →
``summary``) → ``view`` / ``mail`` (the digest mail) → ``sender`` (exactly once per window,
as the holder of the ``lease``) → ``scheduler`` (a handler of the consumer runtime).
``process`` wires the parts, as ``alerts.pipeline.build_stages`` wires the worker's.

Imports from consumer: core, broker, store, lookups, channels, silences, detect, questions (never
alerts, commands, stages, web).
"""
