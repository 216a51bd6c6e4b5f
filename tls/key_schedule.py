# The TLS 1.3 key schedule primitives (RFC 8446 §7.1, RFC 5869): HKDF-Extract,
# HKDF-Expand, HKDF-Expand-Label and Derive-Secret, and the cipher suites'
# hash and key sizes.  Everything that derives keys from a TLS secret (QUIC's
# "quic key/iv/hp", the record layer's "key/iv", exporters, tickets) calls
# these; nobody else writes HKDF.
#
# HMAC comes from OpenSSL's libcrypto through hmac.digest (CPython's _hashlib
# binding): one C call per HMAC, which matters because QUIC derives keys on
# every Initial and key update.
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class CipherSuiteInfo:
    code: int
    name: str
    hash_name: str  # hashlib / OpenSSL name
    hash_length: int
    key_length: int
    iv_length: int = 12


TLS_AES_128_GCM_SHA256 = 0x1301
TLS_AES_256_GCM_SHA384 = 0x1302
TLS_CHACHA20_POLY1305_SHA256 = 0x1303

CIPHER_SUITES: dict[int, CipherSuiteInfo] = {
    0x1301: CipherSuiteInfo(0x1301, "TLS_AES_128_GCM_SHA256", "sha256", 32, 16),
    0x1302: CipherSuiteInfo(0x1302, "TLS_AES_256_GCM_SHA384", "sha384", 48, 32),
    0x1303: CipherSuiteInfo(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "sha256", 32, 32),
}

_HASH_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64}


def hash_length(hash_name: str) -> int:
    return _HASH_LENGTHS[hash_name]


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2); an empty salt means HashLen zero bytes."""
    if not salt:
        salt = bytes(_HASH_LENGTHS[hash_name])
    return hmac.digest(salt, ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3)."""
    hlen = _HASH_LENGTHS[hash_name]
    if length > 255 * hlen or length < 0:
        raise ValueError("HKDF-Expand length out of range")
    if length <= hlen:  # the common case: one block
        return hmac.digest(prk, info + b"\x01", hash_name)[:length]
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), hash_name)
        out += block
        counter += 1
    return bytes(out[:length])


def hkdf_label(label: bytes, context: bytes, length: int) -> bytes:
    """The HkdfLabel structure of RFC 8446 §7.1, label without the "tls13 " prefix."""
    full = b"tls13 " + label
    if len(full) > 255 or len(context) > 255 or not 0 <= length <= 0xFFFF:
        raise ValueError("HkdfLabel field out of range")
    return length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) (RFC 8446 §7.1)."""
    return hkdf_expand(hash_name, secret, hkdf_label(label, context, length), length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret(Secret, Label, Messages), given Transcript-Hash(Messages)."""
    return hkdf_expand_label(
        hash_name, secret, label, transcript_hash, _HASH_LENGTHS[hash_name]
    )


def empty_hash(hash_name: str) -> bytes:
    return hashlib.new(hash_name, b"").digest()


def traffic_key_iv(suite: CipherSuiteInfo, secret: bytes) -> tuple[bytes, bytes]:
    """The record layer's [sender]_write_key and _iv (RFC 8446 §7.3)."""
    return (
        hkdf_expand_label(suite.hash_name, secret, b"key", b"", suite.key_length),
        hkdf_expand_label(suite.hash_name, secret, b"iv", b"", suite.iv_length),
    )


def next_traffic_secret(suite: CipherSuiteInfo, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 (RFC 8446 §7.2)."""
    return hkdf_expand_label(suite.hash_name, secret, b"traffic upd", b"", suite.hash_length)
