"""The alert pipeline's stages, and only the stages: decode, enrich, policy, render.

The pipeline runs them as decode → facts → policy → names → render → send (facts and names
are the enrich stage's cheap and costly halves); it lives in ``consumer/alerts/pipeline.py``,
with the sending after them. Each stage is one small module with one entry point
(``Decoder``, ``Enricher``, ``Policy``, ``Renderer``); ``notice`` is the alert's view, what
the templates show. Nothing outside the alert path imports a stage: what the digest shares
with them lives in core, lookups and channels.

Imports from consumer: detect, core, store, lookups, channels, silences (never alerts,
broker, commands, digest, questions, web).
"""
