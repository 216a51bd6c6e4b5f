# Key exchange for TLS 1.3 (RFC 8446 §4.2.7, §4.2.8, §7.4).  This module owns:
#   - the supported groups: x25519, secp256r1, secp384r1 and the hybrid
#     X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem), all computed by
#     `cryptography` (never a home-made primitive);
#   - validation of peer shares: wrong length, compressed or invalid points,
#     invalid ML-KEM keys/ciphertexts and an all-zero X25519 result are
#     illegal_parameter alerts;
#   - the server's group choice and the HelloRetryRequest decision.
# Private keys can be injected as bytes so known-answer traces (RFC 8448) can
# be replayed; otherwise randomness comes from `rng` (default: os.urandom
# through `cryptography`'s own generators).
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from .enums import AlertDescription, Group
from .errors import AlertError

Rng = Callable[[int], bytes]

X25519 = Group.X25519
SECP256R1 = Group.SECP256R1
SECP384R1 = Group.SECP384R1
X25519MLKEM768 = Group.X25519MLKEM768

# Our default preference, strongest first (the hybrid protects against a
# future quantum adversary recording traffic today).
DEFAULT_GROUPS: tuple[int, ...] = (X25519MLKEM768, X25519, SECP256R1, SECP384R1)
SUPPORTED_GROUPS = frozenset(DEFAULT_GROUPS)

_EC_CURVES = {SECP256R1: ec.SECP256R1(), SECP384R1: ec.SECP384R1()}
# Uncompressed point sizes: 0x04 || X || Y (RFC 8446 §4.2.8.2).
_EC_POINT_LENGTH = {SECP256R1: 65, SECP384R1: 97}
_EC_SCALAR_LENGTH = {SECP256R1: 32, SECP384R1: 48}
_EC_ORDER = {
    SECP256R1: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    SECP384R1: int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
}

MLKEM768_ENCAPSULATION_KEY_LENGTH = 1184
MLKEM768_CIPHERTEXT_LENGTH = 1088
MLKEM768_SEED_LENGTH = 64
X25519_LENGTH = 32

# Share sizes on the wire, per group, (client share, server share).
SHARE_LENGTHS = {
    X25519: (32, 32),
    SECP256R1: (65, 65),
    SECP384R1: (97, 97),
    X25519MLKEM768: (
        MLKEM768_ENCAPSULATION_KEY_LENGTH + X25519_LENGTH,
        MLKEM768_CIPHERTEXT_LENGTH + X25519_LENGTH,
    ),
}


def _illegal(reason: str) -> AlertError:
    return AlertError(AlertDescription.illegal_parameter, reason)


def _group(group: int) -> Group:
    if type(group) is Group:  # skips the Enum lookup (hot: every key share)
        return group
    try:
        g = Group(group)
    except ValueError:
        raise _illegal(f"unsupported group 0x{group:04x}") from None
    return g


# ---------------------------------------------------------------------------
# Private key construction (injectable bytes or rng)


def _x25519_private(private: bytes | None, rng: Rng | None) -> x25519.X25519PrivateKey:
    if private is None and rng is None:
        return x25519.X25519PrivateKey.generate()
    raw = private if private is not None else rng(32)  # type: ignore[misc]
    if len(raw) != 32:
        raise ValueError("an X25519 private key is 32 bytes")
    return x25519.X25519PrivateKey.from_private_bytes(raw)


def _ec_private(group: Group, private: bytes | None, rng: Rng | None) -> ec.EllipticCurvePrivateKey:
    curve = _EC_CURVES[group]
    if private is None and rng is None:
        return ec.generate_private_key(curve)
    order = _EC_ORDER[group]
    if private is not None:
        scalar = int.from_bytes(private, "big")
        if not 0 < scalar < order:
            raise ValueError("EC private scalar out of range")
        return ec.derive_private_key(scalar, curve)
    while True:  # rejection sampling keeps the scalar uniform
        scalar = int.from_bytes(rng(_EC_SCALAR_LENGTH[group]), "big")  # type: ignore[misc]
        if 0 < scalar < order:
            return ec.derive_private_key(scalar, curve)


def _mlkem_private(seed: bytes | None, rng: Rng | None) -> mlkem.MLKEM768PrivateKey:
    if seed is None and rng is None:
        return mlkem.MLKEM768PrivateKey.generate()
    raw = seed if seed is not None else rng(MLKEM768_SEED_LENGTH)  # type: ignore[misc]
    if len(raw) != MLKEM768_SEED_LENGTH:
        raise ValueError("an ML-KEM-768 seed (d || z) is 64 bytes")
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(raw)


# ---------------------------------------------------------------------------
# Peer share parsing (every failure is illegal_parameter, RFC 8446 §4.2.8)


def _x25519_peer(data: bytes) -> x25519.X25519PublicKey:
    if len(data) != X25519_LENGTH:
        raise _illegal("X25519 share must be 32 bytes")
    return x25519.X25519PublicKey.from_public_bytes(bytes(data))


def _x25519_exchange(key: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    try:
        secret = key.exchange(_x25519_peer(peer))
    except ValueError:
        # OpenSSL refuses an all-zero result (low-order point).
        raise _illegal("X25519 shared secret is all zero") from None
    # RFC 8446 §7.4.2 / RFC 7748 §6.1: MUST check the result is not all zeros.
    if not any(secret):
        raise _illegal("X25519 shared secret is all zero")
    return secret


def _ec_peer(group: Group, data: bytes) -> ec.EllipticCurvePublicKey:
    # RFC 8446 §4.2.8.2: only the uncompressed form (0x04 || X || Y) is legal;
    # the point must be on the curve (checked by from_encoded_point).
    if len(data) != _EC_POINT_LENGTH[group] or data[:1] != b"\x04":
        raise _illegal(f"{group.name} share must be an uncompressed point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[group], bytes(data))
    except ValueError:
        raise _illegal(f"{group.name} share is not a point on the curve") from None


def _ec_exchange(group: Group, key: ec.EllipticCurvePrivateKey, peer: bytes) -> bytes:
    try:
        # §7.4.1: the shared secret is the x-coordinate, full length.
        return key.exchange(ec.ECDH(), _ec_peer(group, peer))
    except ValueError:
        raise _illegal(f"{group.name} key exchange failed") from None


def _ec_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


# ---------------------------------------------------------------------------
# Client side: one KeyShare per offered group


class KeyShare:
    """Our key pair for one group; `public` is the key_exchange field we send.

    For X25519MLKEM768 the client share is
    ML-KEM-768 encapsulation key (1184) || X25519 public key (32).
    """

    __slots__ = ("group", "public", "_key", "_x25519")

    def __init__(self, group: int, public: bytes, key, x25519_key=None) -> None:
        self.group = group if type(group) is Group else Group(group)
        self.public = public
        self._key = key
        self._x25519 = x25519_key

    @classmethod
    def generate(
        cls, group: int, private: bytes | None = None, *, rng: Rng | None = None
    ) -> "KeyShare":
        """A fresh key pair for `group`.

        `private` injects the private key: 32 bytes (x25519), the big-endian
        scalar (P-256 / P-384), or for X25519MLKEM768 the 64-byte ML-KEM seed
        followed by the 32-byte X25519 private key (96 bytes).
        `rng(n) -> bytes` derives the keys from caller randomness instead.
        """
        g = _group(group)
        if g == X25519:
            k = _x25519_private(private, rng)
            return cls(g, k.public_key().public_bytes_raw(), k)
        if g in _EC_CURVES:
            k = _ec_private(g, private, rng)
            return cls(g, _ec_public(k), k)
        if g == X25519MLKEM768:
            seed = xpriv = None
            if private is not None:
                if len(private) != MLKEM768_SEED_LENGTH + X25519_LENGTH:
                    raise ValueError("X25519MLKEM768 private key is 64-byte seed || 32-byte x25519")
                seed, xpriv = private[:MLKEM768_SEED_LENGTH], private[MLKEM768_SEED_LENGTH:]
            kem = _mlkem_private(seed, rng)
            xk = _x25519_private(xpriv, rng)
            public = kem.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
            return cls(g, public, kem, xk)
        raise _illegal(f"unsupported group {g!r}")  # pragma: no cover

    def exchange(self, peer_share: bytes) -> bytes:
        """The shared secret from the server's key_exchange; a bad share is
        AlertError(illegal_parameter)."""
        peer_share = bytes(peer_share)
        if self.group == X25519:
            return _x25519_exchange(self._key, peer_share)
        if self.group in _EC_CURVES:
            return _ec_exchange(self.group, self._key, peer_share)
        # X25519MLKEM768: ciphertext (1088) || X25519 public (32); the secret is
        # ML-KEM shared secret || X25519 shared secret (draft-ietf-tls-ecdhe-mlkem §3).
        if len(peer_share) != SHARE_LENGTHS[X25519MLKEM768][1]:
            raise _illegal("X25519MLKEM768 server share has the wrong length")
        ct, xpub = peer_share[:MLKEM768_CIPHERTEXT_LENGTH], peer_share[MLKEM768_CIPHERTEXT_LENGTH:]
        try:
            kem_secret = self._key.decapsulate(ct)
        except ValueError:
            raise _illegal("invalid ML-KEM-768 ciphertext") from None
        return kem_secret + _x25519_exchange(self._x25519, xpub)

    def __repr__(self) -> str:
        return f"KeyShare({self.group.name})"


# ---------------------------------------------------------------------------
# Server side: uniform for DH groups and the KEM


def server_exchange(
    group: int,
    client_share: bytes,
    private: bytes | None = None,
    *,
    rng: Rng | None = None,
) -> tuple[bytes, bytes]:
    """Answer a client's share: returns (server key_exchange, shared secret).

    For DH groups the server makes its own key pair (`private` injects it as for
    KeyShare.generate); for X25519MLKEM768 it encapsulates to the client's
    ML-KEM key (`private` then injects only the 32-byte X25519 key: the
    encapsulation randomness comes from OpenSSL and cannot be injected).
    A bad client share is AlertError(illegal_parameter).
    """
    g = _group(group)
    client_share = bytes(client_share)
    if g == X25519MLKEM768:
        if len(client_share) != SHARE_LENGTHS[X25519MLKEM768][0]:
            raise _illegal("X25519MLKEM768 client share has the wrong length")
        ek = client_share[:MLKEM768_ENCAPSULATION_KEY_LENGTH]
        xpub = client_share[MLKEM768_ENCAPSULATION_KEY_LENGTH:]
        try:
            # FIPS 203 §7.2 encapsulation key checks (type and modulus) by OpenSSL.
            kem_secret, ct = mlkem.MLKEM768PublicKey.from_public_bytes(ek).encapsulate()
        except ValueError:
            raise _illegal("invalid ML-KEM-768 encapsulation key") from None
        xk = _x25519_private(private, rng)
        x_secret = _x25519_exchange(xk, xpub)
        return ct + xk.public_key().public_bytes_raw(), kem_secret + x_secret
    share = KeyShare.generate(g, private, rng=rng)
    return share.public, share.exchange(client_share)


server_encapsulate = server_exchange  # the name used for KEMs in the contract


def validate_share(group: int, key_exchange: bytes, from_client: bool = True) -> None:
    """Cheap syntactic check of a key_exchange field (length and point form).
    Full validation happens in exchange(); this lets a server reject a
    malformed share even for a group it does not end up using."""
    g = _group(group)
    if g in _EC_CURVES:
        _ec_peer(g, key_exchange)
        return
    expected = SHARE_LENGTHS[g][0 if from_client else 1]
    if len(key_exchange) != expected:
        raise _illegal(f"{g.name} share has the wrong length")


# ---------------------------------------------------------------------------
# Group choice and the HelloRetryRequest decision (RFC 8446 §4.1.1, §4.1.4)


def check_client_shares(client_groups: Sequence[int], share_groups: Sequence[int]) -> None:
    """RFC 8446 §4.2.8: a client MUST NOT offer two shares for one group nor a
    share for a group absent from supported_groups; servers MAY check, we do.
    (The shares should also follow supported_groups order; not enforced.)"""
    seen: set[int] = set()
    offered = set(client_groups)
    for g in share_groups:
        if g in seen:
            raise _illegal(f"duplicate key share for group 0x{g:04x}")
        if g not in offered:
            raise _illegal(f"key share for group 0x{g:04x} not in supported_groups")
        seen.add(g)


def select_group(
    client_groups: Sequence[int],
    client_share_groups: Iterable[int],
    server_preference: Sequence[int] = DEFAULT_GROUPS,
    prefer_existing_share: bool = True,
) -> tuple[int, bool]:
    """Choose the (EC)DHE group; returns (group, needs_hrr).

    The server's preference order decides among the groups both support.  With
    prefer_existing_share (the default, as most servers do) a mutually
    supported group the client already sent a share for wins, saving a round
    trip, even when it is lower in our preference.  Otherwise, if the client
    sent no share for the chosen group, a HelloRetryRequest names it.
    No mutual group: AlertError(handshake_failure) (§4.1.1).
    """
    share_groups = [g for g in client_share_groups]
    client_set = set(client_groups)
    mutual = [g for g in server_preference if g in client_set and g in SUPPORTED_GROUPS]
    if not mutual:
        raise AlertError(AlertDescription.handshake_failure, "no mutually supported group")
    shares = set(share_groups)
    if prefer_existing_share:
        for g in mutual:
            if g in shares:
                return Group(g), False
    best = mutual[0]
    return Group(best), best not in shares
