"""Events and enriched events for unit tests (fixed ids and times, overridable fields)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from consumer.core.enriched import Enriched, FirstSeen
from schemas.event import LoginEvent, Outcome, PamType

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# A key digest: LoginEvent.fingerprint prints it as ssh-keygen does (SHA256:6oxX…).
KEY_SHA256 = bytes.fromhex("ea8c57c6bd40451093958ac02a0de2aef7b246b2ada79d7356b65d8e89fd3e63")


def event(**fields: Any) -> LoginEvent:
    """A successful ed25519 key login of alice on web-01 from 192.0.2.10."""
    base: dict[str, Any] = {
        "id": hashlib.sha256(repr(sorted(fields.items())).encode()).digest()[:16],
        "time": T0,
        "host": "web-01",
        "service": "sshd",
        "pam_type": PamType.OPEN_SESSION,
        "outcome": Outcome.SUCCESS,
        "user": "alice",
        "rhost": "192.0.2.10",
        "tty": "ssh",
        "client_ip": "192.0.2.10",
        "client_port": 50022,
        "server_ip": "198.51.100.5",
        "server_port": 22,
        "auth_method": "publickey",
        "key_type": "ssh-ed25519",
        "key_sha256": KEY_SHA256,
        "hook_version": "0.1.0",
    }
    base.update(fields)
    return LoginEvent(**base)


def enriched(login: LoginEvent | None = None, **fields: Any) -> Enriched:
    base: dict[str, Any] = {
        "event": login or event(),
        "rdns": "laptop.example.net",
        "rdns_verified": True,
        "country": "DE",
        "country_name": "Germany",
        "city": "Berlin",
        "network": "192.0.2.0/24",
        "first_seen": FirstSeen(),
    }
    base.update(fields)
    return Enriched(**base)


def books(store: Any, config: Any, monotonic: Any = None) -> dict[str, Any]:
    """The ``Stages`` keywords of a real store's silence and answer books (``monotonic``:
    their clock; a constant one reads the store once, then never again) and detections."""
    from consumer.alerts.detecting import Detecting
    from consumer.questions.flags import AnswerBook
    from consumer.questions.table import QuestionTable
    from consumer.silences.book import SilenceBook
    from consumer.silences.table import SilenceTable

    interval = config.worker.silence_interval.seconds
    clock = {} if monotonic is None else {"monotonic": monotonic}
    return {"silences": SilenceBook(SilenceTable(store.db), config, **clock),
            "answers": AnswerBook(QuestionTable(store.db), interval, **clock),
            "detecting": Detecting(config, getattr(store, "quota", None))}  # fmt: skip
