"""``loginwatch``'s subcommands, one module each (``consumer/cli.py`` lists them).

Each module exposes ``register(subparsers)``, which adds its parser and sets ``run``: a
function of the parsed arguments that returns the exit status. Commands read files and
the environment; everything they call takes values (architecture.md #9). ``run_worker`` and
``run_digest`` start the two daemons; ``_common`` holds what several commands share.

Imports from consumer: core, broker, store, lookups, channels, stages, alerts, digest,
silences, questions, web, detect (never cli: it imports them).
"""
