"""Enrich stage (stub)."""

from __future__ import annotations

from datetime import datetime

from consumer.model import Enriched
from consumer.store import Store
from schemas.config import EnrichConfig
from schemas.event import LoginEvent


class Enricher:
    def __init__(self, config: EnrichConfig, store: Store) -> None:
        self.config = config
        self.store = store

    def __call__(self, event: LoginEvent, now: datetime) -> Enriched:
        raise NotImplementedError

    def close(self) -> None:
        """Close the GeoIP database."""
