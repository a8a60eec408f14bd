"""Signed action links (consumer/core/links.py): sign, verify, expiry, tamper, reuse, rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer.core.links import ACK, ANSWER_NO, ANSWER_YES, SILENCE_HOST, Signer, link
from consumer.store import open_store
from consumer.web.sessions import Nonces
from schemas.errors import ConfigError, LinkError

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD = "o" * 40
NEW = "n" * 40


def token(signer: Signer, action: str = ANSWER_NO, hours: float = 1) -> str:
    return signer.sign(
        action, {"question": "ab" * 16}, "bob@example.org", T0 + timedelta(hours=hours)
    )


def test_a_token_verifies_with_its_action_scope_recipient_and_expiry() -> None:
    signer = Signer((NEW,))
    claims = signer.verify(ANSWER_NO, token(signer), T0)
    assert claims.action == ANSWER_NO
    assert claims.scope == {"question": "ab" * 16}
    assert claims.recipient == "bob@example.org"
    assert claims.expires == int((T0 + timedelta(hours=1)).timestamp())
    assert len(claims.id) >= 16
    assert (
        link("https://lw.example.org/", ANSWER_NO, "TOK")
        == "https://lw.example.org/a/answer-no/TOK"
    )


def test_two_tokens_for_the_same_thing_have_different_ids() -> None:
    signer = Signer((NEW,))
    first, second = (signer.verify(ANSWER_NO, token(signer), T0) for _ in range(2))
    assert first.id != second.id


@pytest.mark.parametrize(
    ("case", "mangle", "why"),
    [
        ("expired", lambda s, t: (ANSWER_NO, t, T0 + timedelta(hours=1)), "expired"),
        ("another action's salt", lambda s, t: (ANSWER_YES, t, T0), "forged"),
        ("an unknown action", lambda s, t: ("delete-everything", t, T0), "forged"),
        (
            "a changed signature character",
            # Not the last character: its low bits are base64 padding, which decoding drops.
            lambda s, t: (ANSWER_NO, t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:], T0),
            "forged",
        ),
        ("a truncated token", lambda s, t: (ANSWER_NO, t[: len(t) // 2], T0), "forged"),
        ("garbage", lambda s, t: (ANSWER_NO, "not-a-token", T0), "forged"),
        ("another key", lambda s, t: (ANSWER_NO, token(Signer(("x" * 40,))), T0), "forged"),
    ],
)
def test_a_bad_token_is_refused_with_its_reason(case: str, mangle: object, why: str) -> None:
    signer = Signer((NEW,))
    action, bad, now = mangle(signer, token(signer))  # type: ignore[operator]
    with pytest.raises(LinkError) as refused:
        signer.verify(action, bad, now)
    assert refused.value.why == why, case


def test_an_altered_payload_with_the_old_signature_is_forged() -> None:
    signer = Signer((NEW,))
    good = token(signer)
    payload, _, mac = good.rpartition(".")
    # The payload is base64 (compressed or not): change one byte of it, keep the MAC.
    raw = bytearray(payload.encode())
    raw[len(raw) // 2] = ord("A") if raw[len(raw) // 2] != ord("A") else ord("B")
    with pytest.raises(LinkError) as refused:
        signer.verify(ANSWER_NO, f"{raw.decode()}.{mac}", T0)
    assert refused.value.why == "forged"
    assert base64  # the token is URL-safe text, nothing to decode by hand


def test_keys_rotate_the_newest_signs_every_one_verifies() -> None:
    old = token(Signer((OLD,)))
    rotated = Signer((OLD, NEW))
    assert rotated.verify(ANSWER_NO, old, T0).recipient == "bob@example.org"
    fresh = token(rotated)
    assert Signer((NEW,)).verify(ANSWER_NO, fresh, T0)  # signed with the newest
    with pytest.raises(LinkError):
        Signer((OLD,)).verify(ANSWER_NO, fresh, T0)
    with pytest.raises(LinkError):  # the old key dropped: its links no longer work
        Signer((NEW,)).verify(ANSWER_NO, old, T0)


def test_short_or_missing_keys_are_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\$\.web\.secret_file: no key"):
        Signer(())
    with pytest.raises(ConfigError, match=r"line 2 is shorter than 32"):
        Signer((NEW, "short"))


def test_a_link_is_spent_once(tmp_path: Path) -> None:
    signer = Signer((NEW,))
    claims = signer.verify(ACK, token(signer, ACK), T0)
    with open_store(str(tmp_path / "store.db")) as store:
        nonces = Nonces(store.db, NEW)
        assert not nonces.link_spent(claims.id)
        nonces.spend_link(claims.id, claims.expires, T0)
        assert nonces.link_spent(claims.id)
        with pytest.raises(LinkError) as again:
            nonces.spend_link(claims.id, claims.expires, T0)
    assert again.value.why == "used"


def test_a_form_nonce_is_single_use_bound_and_expires(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "store.db")) as store:
        nonces = Nonces(store.db, NEW)
        nonce = nonces.issue("answer", "link-1", T0)
        for purpose, bound in (("answer", "link-2"), ("act", "link-1")):
            with pytest.raises(LinkError, match="not ours"):
                nonces.spend(nonce, purpose, bound, T0)
        with pytest.raises(LinkError) as late:
            nonces.spend(nonce, "answer", "link-1", T0 + timedelta(hours=3))
        assert late.value.why == "expired"
        nonces.spend(nonce, "answer", "link-1", T0)
        with pytest.raises(LinkError) as again:
            nonces.spend(nonce, "answer", "link-1", T0)
        assert again.value.why == "used"
        with pytest.raises(LinkError, match="malformed"):
            nonces.spend("", "answer", "link-1", T0)
        # Issuing wrote nothing: only the spend above left a row.
        assert store.db.execute("SELECT COUNT(*) FROM web_nonce") == [(1,)]
    assert SILENCE_HOST
