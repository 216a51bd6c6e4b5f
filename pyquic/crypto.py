# QUIC key derivation on top of the TLS key schedule (RFC 9001 §5, RFC 9369
# §3.3): Initial secrets from the client's Destination Connection ID, packet
# protection keys from a TLS secret ("quic key/iv/hp", or "quicv2 ..."), the
# key update to the next phase ("quic ku"; the hp key is kept, §6), and the
# Retry integrity tag (§5.8).  Which packet-protection backend runs (the C
# extension or its pure-Python twin) is decided here, once.
from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from tls.key_schedule import CIPHER_SUITES, hkdf_expand_label, hkdf_extract

from .versions import VersionInfo, version_info

if os.environ.get("PYQUIC_CRYPTO") == "python":
    from . import _crypto_py as backend
else:
    try:
        from . import _crypto as backend  # type: ignore[no-redef]
    except ImportError:  # built with PYQUIC_NO_EXTENSION=1
        from . import _crypto_py as backend  # type: ignore[no-redef]

CryptoError = backend.CryptoError
INITIAL_CIPHER_SUITE = 0x1301  # RFC 9001 §5.2: Initial packets use AES-128-GCM


@dataclass(frozen=True)
class PacketKeys:
    """One direction's keys at one key phase, and the secret they came from."""

    version: VersionInfo
    cipher_suite: int
    secret: bytes
    hp_key: bytes
    protection: "backend.PacketProtection"

    def next_phase(self) -> "PacketKeys":
        """Keys for the next key phase (RFC 9001 §6.1): new secret, key and iv; same hp."""
        suite = CIPHER_SUITES[self.cipher_suite]
        secret = hkdf_expand_label(
            suite.hash_name, self.secret, self.version.label(b"ku"), b"", suite.hash_length
        )
        return _build(self.version, self.cipher_suite, secret, self.hp_key)


def _build(version: VersionInfo, cipher_suite: int, secret: bytes, hp_key: bytes) -> PacketKeys:
    suite = CIPHER_SUITES[cipher_suite]
    h = suite.hash_name
    key = hkdf_expand_label(h, secret, version.label(b"key"), b"", suite.key_length)
    iv = hkdf_expand_label(h, secret, version.label(b"iv"), b"", suite.iv_length)
    return PacketKeys(
        version, cipher_suite, secret, hp_key, backend.PacketProtection(cipher_suite, key, iv, hp_key)
    )


def derive_packet_keys(version: int, cipher_suite: int, secret: bytes) -> PacketKeys:
    """Packet protection keys for a TLS traffic secret (RFC 9001 §5.1)."""
    info = version_info(version)
    suite = CIPHER_SUITES[cipher_suite]
    hp_key = hkdf_expand_label(suite.hash_name, secret, info.label(b"hp"), b"", suite.key_length)
    return _build(info, cipher_suite, secret, hp_key)


def initial_secrets(version: int, destination_cid: bytes) -> tuple[bytes, bytes]:
    """(client_initial_secret, server_initial_secret) for the client's first DCID (§5.2)."""
    info = version_info(version)
    initial_secret = hkdf_extract("sha256", info.initial_salt, destination_cid)
    return (
        hkdf_expand_label("sha256", initial_secret, b"client in", b"", 32),
        hkdf_expand_label("sha256", initial_secret, b"server in", b"", 32),
    )


def initial_keys(version: int, destination_cid: bytes, is_client: bool) -> tuple[PacketKeys, PacketKeys]:
    """(send keys, receive keys) for Initial packets, from this endpoint's side."""
    client, server = initial_secrets(version, destination_cid)
    c = derive_packet_keys(version, INITIAL_CIPHER_SUITE, client)
    s = derive_packet_keys(version, INITIAL_CIPHER_SUITE, server)
    return (c, s) if is_client else (s, c)


def retry_pseudo_packet(original_dcid: bytes, retry_without_tag: bytes) -> bytes:
    """The Retry Pseudo-Packet of RFC 9001 §5.8."""
    if len(original_dcid) > 20:
        raise ValueError("connection ID longer than 20 bytes")
    return bytes((len(original_dcid),)) + original_dcid + retry_without_tag


def retry_integrity_tag(version: int, original_dcid: bytes, retry_without_tag: bytes) -> bytes:
    """The 16-byte Retry Integrity Tag: AES-128-GCM over nothing, the pseudo-packet as AAD."""
    info = version_info(version)
    aead = backend.AEAD(INITIAL_CIPHER_SUITE, info.retry_key, info.retry_nonce)
    return aead.seal(0, retry_pseudo_packet(original_dcid, retry_without_tag), b"")


def verify_retry_integrity(version: int, original_dcid: bytes, retry_packet: bytes) -> bool:
    """Whether a whole Retry packet (tag included) carries a valid integrity tag."""
    if len(retry_packet) < 16:
        return False
    expected = retry_integrity_tag(version, original_dcid, retry_packet[:-16])
    return hmac.compare_digest(expected, retry_packet[-16:])
