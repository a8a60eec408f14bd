"""What ``SSH_AUTH_INFO_0`` says: the methods of a login and the keys it used.

sshd writes one line per method that succeeded (``publickey ssh-ed25519 AAAA…``,
``password``, ``keyboard-interactive``): several with ``AuthenticationMethods
publickey,publickey``. A key is shipped as its SHA-256 fingerprint, never the key.

An OpenSSH certificate (``ssh-ed25519-cert-v01@openssh.com`` …) is a key signed by a
CA: its fingerprint is the certified key's, as sshd logs it ("ED25519-CERT
SHA256:…") and ``ssh-keygen -l`` prints it for the key and for the certificate alike,
not the hash of the whole certificate; the key id, serial and the CA's key say who
issued it (PROTOCOL.certkeys). Every byte here is the remote side's: anything that
does not parse is left out, never an error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import NamedTuple

# The certified key's type and how many SSH strings (an mpint is one) hold its public
# part after the nonce; the plain key's blob is its type, then those same strings.
_CERTIFIED = {
    b"ssh-rsa-cert-v01@openssh.com": (b"ssh-rsa", 2),
    b"ssh-dss-cert-v01@openssh.com": (b"ssh-dss", 4),
    b"ecdsa-sha2-nistp256-cert-v01@openssh.com": (b"ecdsa-sha2-nistp256", 2),
    b"ecdsa-sha2-nistp384-cert-v01@openssh.com": (b"ecdsa-sha2-nistp384", 2),
    b"ecdsa-sha2-nistp521-cert-v01@openssh.com": (b"ecdsa-sha2-nistp521", 2),
    b"ssh-ed25519-cert-v01@openssh.com": (b"ssh-ed25519", 1),
    b"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": (b"sk-ecdsa-sha2-nistp256@openssh.com", 3),
    b"sk-ssh-ed25519-cert-v01@openssh.com": (b"sk-ssh-ed25519@openssh.com", 2),
}


class Key(NamedTuple):
    type: bytes  # as the line names it
    sha256: bytes  # of the key: the certified key's, for a certificate


class Cert(NamedTuple):
    key_id: bytes
    serial: int
    ca_type: bytes
    ca_sha256: bytes  # of the CA's key


class AuthInfo(NamedTuple):
    methods: bytes  # joined by ``+``
    keys: tuple[Key, ...]  # in the order they were used
    cert: Cert | None  # the first certificate


def parse_auth_info(raw: bytes) -> AuthInfo:
    """``SSH_AUTH_INFO_0`` → methods, keys and certificate, whatever bytes it holds."""
    methods: list[bytes] = []
    keys: list[Key] = []
    cert: Cert | None = None
    for line in raw.splitlines():
        words = line.split()
        if not words:
            continue
        methods.append(words[0])
        if words[0] != b"publickey" or len(words) < 3:
            continue
        try:
            blob = base64.b64decode(words[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        if words[1] in _CERTIFIED:
            try:
                plain, found = certificate(blob)
            except ValueError:
                continue  # no certificate after all: nothing to say of it
            keys.append(Key(words[1], hashlib.sha256(plain).digest()))
            cert = cert or found
        else:
            keys.append(Key(words[1], hashlib.sha256(blob).digest()))
    return AuthInfo(b"+".join(methods), tuple(keys), cert)


def certificate(blob: bytes) -> tuple[bytes, Cert]:
    """A certificate's plain key blob (what its fingerprint hashes) and who issued it.

    Raises:
        ValueError: not a certificate of a known type, or cut short.
    """
    cert_type, pos = _string(blob, 0)
    if cert_type not in _CERTIFIED:
        raise ValueError("not a certificate type")
    plain_type, fields = _CERTIFIED[cert_type]
    _, pos = _string(blob, pos)  # the nonce
    start = pos
    for _ in range(fields):
        _, pos = _string(blob, pos)
    plain = len(plain_type).to_bytes(4, "big") + plain_type + blob[start:pos]
    serial = int.from_bytes(_take(blob, pos, 8), "big")
    pos += 8 + 4  # the serial, then the certificate type (user or host)
    key_id, pos = _string(blob, pos)
    _, pos = _string(blob, pos)  # the valid principals
    _take(blob, pos, 16)  # valid after, valid before
    pos += 16
    for _ in range(3):  # critical options, extensions, reserved
        _, pos = _string(blob, pos)
    ca_key, pos = _string(blob, pos)
    ca_type, _ = _string(ca_key, 0)
    return plain, Cert(key_id, serial, ca_type, hashlib.sha256(ca_key).digest())


def _take(blob: bytes, pos: int, size: int) -> bytes:
    if pos + size > len(blob):
        raise ValueError("cut short")
    return blob[pos : pos + size]


def _string(blob: bytes, pos: int) -> tuple[bytes, int]:
    """An SSH string (uint32 length, bytes) at ``pos``, and the position after it."""
    size = int.from_bytes(_take(blob, pos, 4), "big")
    return _take(blob, pos + 4, size), pos + 4 + size
