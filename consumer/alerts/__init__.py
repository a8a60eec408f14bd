"""The alert path: ``loginwatch worker`` takes each event from the alerts queue to a mail.

Owns: the worker (``worker``: a handler of the consumer runtime, a pipeline thread, each
delivery settled after its writes committed), its fair intake across the alert lanes and
their probes (``lanes``), shedding per speaker (``shedding``, and ``speakers``: what the
worker does per broker user around a batch), the pipeline with its composition root
(``pipeline``: decode → facts → policy → names → render → send, and ``build_stages``), the
one send-once step (``send_once``) and the system alerts' way out (``system_alerts``).

Imports from consumer: core, broker, store, lookups, channels, stages, silences, questions,
detect (never commands, digest, web).
"""
