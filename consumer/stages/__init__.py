"""The worker's stages: decode → enrich → policy → render → smtp (see consumer/pipeline.py)."""
