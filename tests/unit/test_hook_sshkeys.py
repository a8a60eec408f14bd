"""SSH_AUTH_INFO_0 as sshd writes it and as an attacker might: keys, certificates, junk.

With a real sshd (a certificate login, a login with four keys):
tests/integration/test_hook_sshd.py.
"""

from __future__ import annotations

import base64
import hashlib
import os

from hypothesis import given
from hypothesis import strategies as st

from producer import capture
from producer.build import build_event
from producer.sshkeys import certificate, parse_auth_info
from schemas.event import MAX_MORE_KEYS, encode
from schemas.wire import decode_event as decode


def _s(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


PK = bytes(range(32))
CA = _s(b"ssh-ed25519") + _s(bytes(range(100, 132)))
PLAIN = _s(b"ssh-ed25519") + _s(PK)
# PROTOCOL.certkeys: type, nonce, key, serial, type, key id, principals, valid after and
# before, critical options, extensions, reserved, signature key, signature.
CERT = b"".join([
    _s(b"ssh-ed25519-cert-v01@openssh.com"), _s(b"n" * 32), _s(PK),
    (2**64 - 2).to_bytes(8, "big"), (1).to_bytes(4, "big"), _s(b"ops \xff key"),
    _s(_s(b"root")), bytes(8), b"\xff" * 8, _s(b""), _s(_s(b"permit-pty") + _s(b"")),
    _s(b""), _s(CA), _s(b"signature"),
])  # fmt: skip


def _line(key_type: bytes, blob: bytes) -> bytes:
    return b"publickey " + key_type + b" " + base64.b64encode(blob) + b"\n"


def test_a_certificate_is_named_by_its_key_and_its_issuer() -> None:
    plain, cert = certificate(CERT)
    assert plain == PLAIN
    assert (cert.key_id, cert.serial, cert.ca_type) == (b"ops \xff key", 2**64 - 2, b"ssh-ed25519")
    assert cert.ca_sha256 == hashlib.sha256(CA).digest()
    auth = parse_auth_info(_line(b"ssh-ed25519-cert-v01@openssh.com", CERT))
    assert [key.sha256 for key in auth.keys] == [hashlib.sha256(PLAIN).digest()]


def test_the_event_carries_the_certificate_and_every_key() -> None:
    rsa = _s(b"ssh-rsa") + _s(b"\x01\x00\x01") + _s(b"\x00" + os.urandom(256))
    info = _line(b"ssh-ed25519-cert-v01@openssh.com", CERT) + b"".join(
        _line(b"ssh-rsa", rsa) for _ in range(MAX_MORE_KEYS + 2)
    )
    env = {b"PAM_TYPE": b"open_session", b"PAM_USER": b"ops", b"SSH_AUTH_INFO_0": info}
    event = decode(encode(build_event(capture.parse(capture.record(env, "", 1)[1]), "h")))
    assert event.key_sha256 == hashlib.sha256(PLAIN).digest()
    assert event.cert is not None
    assert event.cert.key_id == "ops \\xff key" and event.cert.serial == str(2**64 - 2)
    assert len(event.more_keys) == MAX_MORE_KEYS, "bounded"
    assert {k.key_sha256 for k in event.more_keys} == {hashlib.sha256(rsa).digest()}
    assert event.truncated == ("more_keys",), "two keys are not named"


def test_auth_info_cut_by_the_capture_is_flagged() -> None:
    rsa = _s(b"ssh-rsa") + _s(b"\x01\x00\x01") + _s(b"\x00" + os.urandom(1024))
    info = b"".join(_line(b"ssh-rsa", rsa) for _ in range(6))  # ~8.3 KiB: past the bound
    env = {b"PAM_TYPE": b"open_session", b"SSH_AUTH_INFO_0": info}
    event = build_event(capture.parse(capture.record(env, "", 1)[1]), "h")
    assert len(event.auth_method) < 64 and "auth_method" in event.truncated
    assert event.more_keys, "the keys that were whole are named"


@given(cut=st.integers(0, len(CERT) - 1), flip=st.integers(0, len(CERT) - 1))
def test_a_cut_or_changed_certificate_is_left_out_never_an_error(cut: int, flip: int) -> None:
    changed = bytearray(CERT)
    changed[flip] ^= 0xFF
    for blob in (CERT[:cut], bytes(changed)):
        auth = parse_auth_info(_line(b"ssh-ed25519-cert-v01@openssh.com", blob))
        assert auth.methods == b"publickey"


@given(st.binary(max_size=600))
def test_any_auth_info_parses(raw: bytes) -> None:
    auth = parse_auth_info(raw)
    assert len(auth.keys) <= raw.count(b"publickey")
