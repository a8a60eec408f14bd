"""Run-time silences and acks: what keeps alerts out of the inbox, changed without a restart.

Owns: the silence rule and its pure matcher (``rules``: ``[[silence]]`` from the config and
silences and acks from the store alike, by hosts, users, kinds, sources and SSH key
fingerprints), the store's ``silence`` table (``table``: add, list, expire, the open ones,
those open during a digest window, a cap per creator), and the reader every worker asks
at ``[worker] silence_interval`` (``book``), which never answers from a stale read.

Imports from consumer: core, store (never alerts, broker, channels, commands, detect,
digest, lookups, questions, stages, web).
"""
