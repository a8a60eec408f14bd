"""What an intruder does next, decided by pure functions that return what they found.

Owns: a brute force then a success (``brute``), impossible travel (``travel``), an escalation
tied to its login (``escalation``), a hop through a jump host (``hops``), hosts that went
quiet (``quiet``), and each finding's words (``words``): one line for the alert, the same in
every channel. Each takes what the store read and ``now``, never the clock or the store;
the values they return live in ``consumer/core/detections.py``.

Imports from consumer: core (never alerts, broker, channels, commands, digest, lookups,
questions, silences, stages, store, web).
"""
