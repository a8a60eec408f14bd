"""The bounds of the tables acting on alerts adds (consumer/store/actions.py): what is past
its keep time goes, what is not stays; sessions are capped per operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from consumer.silences.rules import Rule
from consumer.silences.table import SilenceTable
from consumer.store import open_store
from consumer.store.actions import SESSIONS_PER_OPERATOR, prune_actions
from consumer.web.sessions import Nonces, Sessions

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEEP = timedelta(days=90)


def test_prune_forgets_what_is_past_its_keep_time_and_nothing_else(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "store.db")) as store:
        silences = SilenceTable(store.db)
        old = silences.add(
            Rule(id="", hosts=("a",), starts=T0 - KEEP * 2, ends=T0 - KEEP - KEEP / 9)
        )
        new = silences.add(Rule(id="", hosts=("b",), starts=T0 - KEEP * 2, ends=T0 - KEEP / 2))
        nonces = Nonces(store.db, "k" * 40)
        nonces.spend(nonces.issue("login", "login", T0 - timedelta(hours=3)), "login", "login",
                     T0 - timedelta(hours=3))  # fmt: skip
        nonces.spend(nonces.issue("login", "login", T0), "login", "login", T0)
        sessions = Sessions(store.db, timedelta(hours=12))
        sessions.create("oscar", "127.0.0.1", T0 - timedelta(days=1))
        live = sessions.create("oscar", "127.0.0.1", T0)
        gone = prune_actions(store.db, before=T0 - KEEP, now=T0)
        assert gone["silence"] == 1 and gone["web_nonce"] == 1 and gone["web_session"] == 1
        assert silences.get(old.id) is None and silences.get(new.id) is not None
        assert store.db.execute("SELECT COUNT(*) FROM web_nonce") == [(1,)]
        assert sessions.get(live.cookie, T0) is not None


def test_an_operator_keeps_at_most_the_newest_sessions(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "store.db")) as store:
        sessions = Sessions(store.db, timedelta(hours=12))
        made = [sessions.create("oscar", "127.0.0.1", T0 + timedelta(seconds=n))
                for n in range(SESSIONS_PER_OPERATOR + 3)]  # fmt: skip
        now = T0 + timedelta(minutes=1)
        assert [sessions.get(m.cookie, now) is not None for m in made] == (
            [False] * 3 + [True] * SESSIONS_PER_OPERATOR
        )
        assert sessions.get(made[-1].cookie, T0 + timedelta(hours=13)) is None  # ended
