"""The vocabulary every central subsystem shares, and nothing that does work of its own.

Owns: what enrichment learned about an event (``enriched``) and what the detections found
(``detections``), the host's records that are no events as the central side reads them
(``records``: a logout as its event, a heartbeat's addresses), the policy's decisions and flood
counts (``decisions``), route precedence (``routing``), which broker user may speak for which
host and whose reports are first-seen votes (``identity``), source addresses and their
networks (``addresses``), host clock skew (``clock``), event text made inert for people
(``display``), the system alerts the central side raises (``system``), the Prometheus
metrics (``metrics``), served bounded (``metrics_server``) and read back only from the
service's own socket (``metrics_socket``), signed action links (``links``) and a value
read again at an interval (``periodic``).

Imports from consumer: nothing (never alerts, broker, channels, commands, detect, digest,
lookups, questions, silences, stages, store, web).
"""
