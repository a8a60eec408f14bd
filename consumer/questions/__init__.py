""" "Was this you?": asking the person who logged in, recording the answer, escalating a "No".

Owns: where a user's question goes (``target``: ``[notify_user]``, the portable user name
rule), the pure decisions (``decide``: whether to ask, what an answer does, when a yes and
a no look like a mail scanner, who hears an escalation), the store's ``question`` and
``answer`` tables (``table``), the messages (``message``: the question and the escalation,
as notices and mails), the worker's step that asks (``asker``), the answers every worker
re-reads to flag later alerts (``flags``), and what a "No" sets off (``escalate``).

Imports from consumer: core, store, channels (never alerts, broker, commands, detect,
digest, lookups, silences, stages, web).
"""
