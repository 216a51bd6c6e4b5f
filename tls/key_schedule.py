# The TLS 1.3 key schedule (RFC 8446 §7, RFC 5869).  This module owns:
#   - the primitives: HKDF-Extract, HKDF-Expand, HKDF-Expand-Label and
#     Derive-Secret, and the cipher suites' hash and key sizes;
#   - Transcript: the running transcript hash, with the HelloRetryRequest
#     "message_hash" replacement (§4.4.1) and forks for binders;
#   - KeySchedule: early / handshake / master secrets and every secret derived
#     from them (§7.1), PSK binders (§4.2.11.2), Finished (§4.4.4), exporters
#     (§7.5), resumption PSKs (§4.6.1) and key updates (§7.2).
# Everything that derives keys from a TLS secret (QUIC's "quic key/iv/hp", the
# record layer's "key/iv", exporters, tickets) calls these; nobody else writes
# HKDF.
#
# HMAC comes from OpenSSL's libcrypto through _hashlib.hmac_digest (what
# hmac.digest calls): one C call per HMAC, which matters because QUIC derives keys on
# every Initial and key update.
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

try:
    # hmac.digest() is a Python wrapper that type-checks its arguments and
    # then calls this; a handshake makes ~15 HMACs per side, so the direct
    # call is worth having.  Same OpenSSL function, same result.
    from _hashlib import hmac_digest as _hmac
except ImportError:  # pragma: no cover - CPython without OpenSSL
    _hmac = hmac.digest


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

_HASH_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64, "sha1": 20}  # sha1: RFC 5869 tests only


def hash_length(hash_name: str) -> int:
    return _HASH_LENGTHS[hash_name]


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2); an empty salt means HashLen zero bytes."""
    if not salt:
        salt = bytes(_HASH_LENGTHS[hash_name])
    return _hmac(salt, ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3)."""
    hlen = _HASH_LENGTHS[hash_name]
    if length > 255 * hlen or length < 0:
        raise ValueError("HKDF-Expand length out of range")
    if length <= hlen:  # the common case: one block
        return _hmac(prk, info + b"\x01", hash_name)[:length]
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = _hmac(prk, block + info + bytes((counter,)), hash_name)
        out += block
        counter += 1
    return bytes(out[:length])


def hkdf_label(label: bytes, context: bytes, length: int) -> bytes:
    """The HkdfLabel structure of RFC 8446 §7.1, label without the "tls13 " prefix."""
    full = b"tls13 " + label
    if len(full) > 255 or len(context) > 255 or not 0 <= length <= 0xFFFF:
        raise ValueError("HkdfLabel field out of range")
    return length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context


# The HkdfLabel prefix (length, "tls13 " + label) depends only on the label
# and the output length, which come from a small fixed set (the RFC's labels,
# QUIC's "quic key/iv/hp", exporters): encoding it once per pair saves the
# byte concatenations on every derivation.  Bounded in case a caller feeds
# arbitrary exporter labels.
_LABEL_PREFIX: dict[tuple[bytes, int], bytes] = {}
_LABEL_PREFIX_MAX = 512


def _label_prefix(label: bytes, length: int) -> bytes:
    if type(label) is not bytes:
        label = bytes(label)
    prefix = _LABEL_PREFIX.get((label, length))
    if prefix is None:
        full = b"tls13 " + label
        if len(full) > 255 or not 0 <= length <= 0xFFFF:
            raise ValueError("HkdfLabel field out of range")
        prefix = length.to_bytes(2, "big") + bytes((len(full),)) + full
        if len(_LABEL_PREFIX) < _LABEL_PREFIX_MAX:
            _LABEL_PREFIX[(label, length)] = prefix
    return prefix


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) (RFC 8446 §7.1)."""
    if length <= _HASH_LENGTHS[hash_name] and len(context) <= 255:
        # One HKDF-Expand block (every TLS secret, key and IV): the label's
        # cached prefix, the context, and T(1) = HMAC(secret, info || 0x01).
        info = _label_prefix(label, length) + bytes((len(context),)) + context + b"\x01"
        return _hmac(secret, info, hash_name)[:length]
    return hkdf_expand(hash_name, secret, hkdf_label(label, context, length), length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret(Secret, Label, Messages), given Transcript-Hash(Messages)."""
    return hkdf_expand_label(
        hash_name, secret, label, transcript_hash, _HASH_LENGTHS[hash_name]
    )


_EMPTY_HASH = {name: hashlib.new(name, b"").digest() for name in _HASH_LENGTHS}


def empty_hash(hash_name: str) -> bytes:
    h = _EMPTY_HASH.get(hash_name)
    return h if h is not None else hashlib.new(hash_name, b"").digest()


def traffic_key_iv(suite: CipherSuiteInfo, secret: bytes) -> tuple[bytes, bytes]:
    """The record layer's [sender]_write_key and _iv (RFC 8446 §7.3)."""
    return (
        hkdf_expand_label(suite.hash_name, secret, b"key", b"", suite.key_length),
        hkdf_expand_label(suite.hash_name, secret, b"iv", b"", suite.iv_length),
    )


def next_traffic_secret(suite: CipherSuiteInfo, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 (RFC 8446 §7.2)."""
    return hkdf_expand_label(suite.hash_name, secret, b"traffic upd", b"", suite.hash_length)


# ---------------------------------------------------------------------------
# Transcript hash (RFC 8446 §4.4.1)

MESSAGE_HASH = 254  # HandshakeType.message_hash


def transcript_hash(hash_name: str, *messages: bytes) -> bytes:
    """Transcript-Hash of the concatenated handshake messages (headers included)."""
    h = hashlib.new(hash_name)
    for message in messages:
        h.update(message)
    return h.digest()


# hashlib.sha256() is a direct constructor; hashlib.new("sha256") goes through
# a name lookup first (one Transcript per connection, but cheap to avoid).
_HASH_CONSTRUCTORS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384}


def _new_hash(hash_name: str):
    ctor = _HASH_CONSTRUCTORS.get(hash_name)
    return ctor() if ctor is not None else hashlib.new(hash_name)


class Transcript:
    """The running hash of the handshake messages, each with its 4-byte header.

    A client does not know the hash before the ServerHello names the cipher
    suite: create it with hash_name=None, and the bytes are kept until
    select_hash() fixes the hash (then they are hashed and dropped).
    """

    __slots__ = ("hash_name", "_hash", "_pending")

    def __init__(self, hash_name: str | None = "sha256") -> None:
        self.hash_name = hash_name
        self._hash = _new_hash(hash_name) if hash_name else None
        self._pending = bytearray()

    def select_hash(self, hash_name: str) -> None:
        """Fix the hash function (once the cipher suite is known)."""
        if self._hash is not None:
            if hash_name != self.hash_name:
                raise ValueError("transcript hash already fixed to " + str(self.hash_name))
            return
        self.hash_name = hash_name
        self._hash = hashlib.new(hash_name)
        self._hash.update(self._pending)
        self._pending = bytearray()

    def update(self, message: bytes) -> None:
        if self._hash is None:
            self._pending += message
        else:
            self._hash.update(message)

    def _require_hash(self):
        if self._hash is None:
            raise ValueError("transcript hash function not selected yet")
        return self._hash

    def digest(self) -> bytes:
        """Transcript-Hash of everything so far (the transcript goes on)."""
        h = self._hash
        if h is None:
            self._require_hash()  # raises
        return h.copy().digest()

    def digest_with(self, extra: bytes) -> bytes:
        """Transcript-Hash(messages so far || extra), without recording extra.

        For PSK binders: the transcript (CH1 + HRR after a retry) followed by
        the truncated ClientHello (RFC 8446 §4.2.11.2).
        """
        h = self._require_hash().copy()
        h.update(extra)
        return h.digest()

    def replace_with_message_hash(self) -> None:
        """After a HelloRetryRequest, ClientHello1 is replaced by
        message_hash(254) || 00 00 Hash.length || Hash(ClientHello1)
        (RFC 8446 §4.4.1).  Call it when the transcript holds exactly ClientHello1,
        before adding the HelloRetryRequest."""
        h = self._require_hash()
        digest = h.digest()
        self._hash = hashlib.new(self.hash_name)  # type: ignore[arg-type]
        self._hash.update(bytes((MESSAGE_HASH, 0, 0, len(digest))) + digest)

    def copy(self) -> "Transcript":
        other = Transcript.__new__(Transcript)
        other.hash_name = self.hash_name
        other._hash = self._hash.copy() if self._hash is not None else None
        other._pending = bytearray(self._pending)
        return other


# ---------------------------------------------------------------------------
# Exporters, resumption, Finished as plain functions (the KeySchedule methods
# call these; a server re-deriving a ticket's PSK needs no KeySchedule).


def _as_bytes(label: bytes | str) -> bytes:
    return label.encode("ascii") if isinstance(label, str) else bytes(label)


def export_keying_material(
    hash_name: str, exporter_secret: bytes, label: bytes | str, context: bytes, length: int
) -> bytes:
    """TLS-Exporter(label, context_value, key_length) (RFC 8446 §7.5):
    HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter",
                      Hash(context_value), key_length).
    Derive-Secret(Secret, label, "") uses the hash of the empty string."""
    secret = derive_secret(hash_name, exporter_secret, _as_bytes(label), empty_hash(hash_name))
    return hkdf_expand_label(
        hash_name, secret, b"exporter", hashlib.new(hash_name, context).digest(), length
    )


def resumption_psk(hash_name: str, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
    """HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce,
    Hash.length) (RFC 8446 §4.6.1)."""
    return hkdf_expand_label(
        hash_name, resumption_master_secret, b"resumption", ticket_nonce, _HASH_LENGTHS[hash_name]
    )


# HKDF-Expand-Label(., "finished", "", Hash.length)'s info || 0x01 per hash:
# four Finished (and every binder) per handshake use it.
_FINISHED_INFO = {name: hkdf_label(b"finished", b"", n) + b"\x01" for name, n in _HASH_LENGTHS.items()}


def finished_key(hash_name: str, base_secret: bytes) -> bytes:
    """finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length) (§4.4.4)."""
    info = _FINISHED_INFO.get(hash_name)
    if info is None:
        return hkdf_expand_label(hash_name, base_secret, b"finished", b"", _HASH_LENGTHS[hash_name])
    return _hmac(base_secret, info, hash_name)  # one HKDF-Expand block of Hash.length


def finished_verify_data(hash_name: str, base_secret: bytes, transcript_hash_value: bytes) -> bytes:
    """verify_data = HMAC(finished_key, Transcript-Hash(...)) (RFC 8446 §4.4.4)."""
    return _hmac(finished_key(hash_name, base_secret), transcript_hash_value, hash_name)


def verify_finished(
    hash_name: str, base_secret: bytes, transcript_hash_value: bytes, received: bytes
) -> bool:
    """Constant-time comparison of a received verify_data (or PSK binder)."""
    expected = finished_verify_data(hash_name, base_secret, transcript_hash_value)
    return hmac.compare_digest(expected, bytes(received))


# ---------------------------------------------------------------------------
# The key schedule (RFC 8446 §7.1)
#
#              0
#              |
#    PSK ->  HKDF-Extract = Early Secret  -> binder_key, c e traffic, e exp master
#              |
#        Derive-Secret(., "derived", "")
#              |
#  (EC)DHE -> HKDF-Extract = Handshake Secret -> c hs traffic, s hs traffic
#              |
#        Derive-Secret(., "derived", "")
#              |
#     0 -> HKDF-Extract = Master Secret -> c/s ap traffic, exp master, res master


_NO_PSK: dict[str, tuple[bytes, bytes]] = {}


def _no_psk_secrets(hash_name: str) -> tuple[bytes, bytes]:
    """(Early Secret, Derive-Secret(Early Secret, "derived", "")) with no PSK."""
    pair = _NO_PSK.get(hash_name)
    if pair is None:
        zeros = bytes(_HASH_LENGTHS[hash_name])
        early = hkdf_extract(hash_name, zeros, zeros)
        pair = (early, derive_secret(hash_name, early, b"derived", empty_hash(hash_name)))
        _NO_PSK[hash_name] = pair
    return pair


class KeySchedule:
    """One connection's key schedule for one cipher suite.

    Stages advance explicitly: construct (early secret from the PSK, or zeros),
    then derive_handshake_secret(shared_secret), then derive_master_secret().
    Every "th" argument is a Transcript-Hash value (bytes), e.g.
    Transcript.digest().
    """

    def __init__(self, cipher_suite: int, psk: bytes | None = None) -> None:
        try:
            self.suite = CIPHER_SUITES[int(cipher_suite)]
        except KeyError:
            raise ValueError(f"unknown cipher suite 0x{int(cipher_suite):04x}") from None
        self.cipher_suite = self.suite.code
        self.hash_name = self.suite.hash_name
        self.hash_length = self.suite.hash_length
        self._zeros = bytes(self.hash_length)
        self.psk = psk
        if psk:
            self.early_secret = hkdf_extract(self.hash_name, self._zeros, psk)
            self._early_derived: bytes | None = None
        else:
            # §7.1: without a PSK the input is Hash.length zeros, so the Early
            # Secret and Derive-Secret(ES, "derived", "") are constants per
            # hash; every full handshake would otherwise recompute them.
            self.early_secret, self._early_derived = _no_psk_secrets(self.hash_name)
        self.handshake_secret: bytes | None = None
        self.master_secret: bytes | None = None

    # -- helpers -----------------------------------------------------------
    def derive(self, secret: bytes, label: bytes, th: bytes) -> bytes:
        """Derive-Secret(secret, label, th): derive_secret() inlined, since a
        handshake derives about ten secrets per side through here."""
        prefix = _LABEL_PREFIX.get((label, self.hash_length))
        if prefix is None or len(th) > 255:
            return derive_secret(self.hash_name, secret, label, th)
        return _hmac(secret, prefix + bytes((len(th),)) + th + b"\x01", self.hash_name)

    def _derived(self, secret: bytes) -> bytes:
        return derive_secret(self.hash_name, secret, b"derived", empty_hash(self.hash_name))

    def _need(self, secret: bytes | None, stage: str) -> bytes:
        if secret is None:
            raise ValueError(f"key schedule: {stage} secret not derived yet")
        return secret

    # -- early secret stage --------------------------------------------------
    def binder_key(self, external: bool) -> bytes:
        """binder_key: Derive-Secret(Early Secret, "ext binder" | "res binder", "")."""
        label = b"ext binder" if external else b"res binder"
        return self.derive(self.early_secret, label, empty_hash(self.hash_name))

    def compute_binder(self, binder_key: bytes, truncated_hello_hash: bytes) -> bytes:
        """The PSK binder: computed as a Finished with binder_key as base key over
        Transcript-Hash(Truncate(ClientHello)) (RFC 8446 §4.2.11.2)."""
        return finished_verify_data(self.hash_name, binder_key, truncated_hello_hash)

    def verify_binder(self, binder_key: bytes, truncated_hello_hash: bytes, received: bytes) -> bool:
        return verify_finished(self.hash_name, binder_key, truncated_hello_hash, received)

    def client_early_traffic_secret(self, th: bytes) -> bytes:
        return self.derive(self.early_secret, b"c e traffic", th)

    def early_exporter_master_secret(self, th: bytes) -> bytes:
        return self.derive(self.early_secret, b"e exp master", th)

    # -- handshake secret stage ----------------------------------------------
    def derive_handshake_secret(self, shared_secret: bytes | None) -> bytes:
        """Handshake Secret = HKDF-Extract(Derive-Secret(ES, "derived", ""), (EC)DHE).
        shared_secret None (psk_ke mode) means Hash.length zeros (§7.1)."""
        ikm = shared_secret if shared_secret is not None else self._zeros
        salt = self._early_derived
        if salt is None:
            salt = self._derived(self.early_secret)
        self.handshake_secret = hkdf_extract(self.hash_name, salt, ikm)
        return self.handshake_secret

    def client_handshake_traffic_secret(self, th: bytes) -> bytes:
        return self.derive(self.handshake_secret or self._need(None, "handshake"), b"c hs traffic", th)

    def server_handshake_traffic_secret(self, th: bytes) -> bytes:
        return self.derive(self.handshake_secret or self._need(None, "handshake"), b"s hs traffic", th)

    # -- master secret stage ---------------------------------------------------
    def derive_master_secret(self) -> bytes:
        hs = self._need(self.handshake_secret, "handshake")
        self.master_secret = hkdf_extract(self.hash_name, self._derived(hs), self._zeros)
        return self.master_secret

    def client_application_traffic_secret_0(self, th: bytes) -> bytes:
        return self.derive(self.master_secret or self._need(None, "master"), b"c ap traffic", th)

    def server_application_traffic_secret_0(self, th: bytes) -> bytes:
        return self.derive(self.master_secret or self._need(None, "master"), b"s ap traffic", th)

    def exporter_master_secret(self, th: bytes) -> bytes:
        return self.derive(self.master_secret or self._need(None, "master"), b"exp master", th)

    def resumption_master_secret(self, th: bytes) -> bytes:
        """th covers the transcript up to and including the client's Finished."""
        return self.derive(self.master_secret or self._need(None, "master"), b"res master", th)

    # -- Finished, exporters, resumption, key update ---------------------------
    def finished_key(self, base_secret: bytes) -> bytes:
        return finished_key(self.hash_name, base_secret)

    def finished_verify_data(self, base_secret: bytes, th: bytes) -> bytes:
        return finished_verify_data(self.hash_name, base_secret, th)

    def verify_finished(self, base_secret: bytes, th: bytes, received: bytes) -> bool:
        """Constant-time check of a peer's Finished.verify_data (§4.4.4)."""
        return verify_finished(self.hash_name, base_secret, th, received)

    def export_keying_material(
        self, exporter_secret: bytes, label: bytes | str, context: bytes, length: int
    ) -> bytes:
        return export_keying_material(self.hash_name, exporter_secret, label, context, length)

    def forget_handshake_secrets(self) -> None:
        """Once the traffic secrets are derived, the PSK and the early and
        handshake secrets are needed no more: dropped, so a connection does
        not hold them for its whole life.  The master secret stays: the
        resumption master secret is derived from it when first needed."""
        self.psk = self.early_secret = self._early_derived = None  # type: ignore[assignment]
        self.handshake_secret = None

    def resumption_psk(self, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
        return resumption_psk(self.hash_name, resumption_master_secret, ticket_nonce)

    def next_application_traffic_secret(self, secret: bytes) -> bytes:
        return next_traffic_secret(self.suite, secret)

    def traffic_key_iv(self, secret: bytes) -> tuple[bytes, bytes]:
        return traffic_key_iv(self.suite, secret)
