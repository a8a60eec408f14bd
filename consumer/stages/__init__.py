"""The worker's stages: enrich → policy → render → deliver (see consumer/model.py)."""
