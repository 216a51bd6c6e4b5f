# Address validation for the server endpoint (RFC 9000 §8.1).  Owns
#   - RetryTokens: the tokens a Retry carries (§8.1.2): AES-GCM sealed with
#     the endpoint's token key over (issue time, a hash of the client's
#     address, original DCID, Retry SCID).  The address hash sits inside the
#     sealed plaintext, not in the AAD, so a token that opens is known to be
#     ours even from another address: check() tells "ours and valid" from
#     "ours but expired / for another address" (the server answers those with
#     INVALID_TOKEN, §8.1.3) from "not ours" (opens under no key of ours:
#     garbage, forged, or another server's);
#   - NewTokens: the tokens a server gives in NEW_TOKEN frames for future
#     connections (§8.1.3): sealed under the same key with another AAD (so a
#     Retry token never passes for one, nor the reverse), over (issue time, a
#     hash of the client's IP address without the port: the next connection
#     comes from another port); valid for `lifetime` seconds. One that does
#     not check out is as good as no token: never an error;
#   - RetryPolicy: when the endpoint asks for address validation: "never",
#     "always", or "auto" (on while the connections whose handshake is not
#     complete reach `threshold`, off again once they fall below `release`:
#     hysteresis, so the mode does not flap with every handshake).
# Time (`now`) and randomness (`entropy`) come in; nothing here does I/O.
from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any, Callable, NamedTuple, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RETRY_TOKEN_LIFETIME = 10.0  # seconds a Retry token is accepted
NEW_TOKEN_LIFETIME = 24 * 3600.0  # seconds a NEW_TOKEN token is accepted
TOKEN_NONCE_LENGTH = 12
ADDRESS_HASH_LENGTH = 16
_TOKEN_AAD = b"pyquic retry token v2"
_NEW_TOKEN_AAD = b"pyquic new token v1"
_NEW_HEAD = struct.Struct("!d16s")  # issue time, host hash
_HEAD = struct.Struct("!d16s")  # issue time, address hash
_MIN_TOKEN = TOKEN_NONCE_LENGTH + _HEAD.size + 2 + 16  # + two CID lengths + the AEAD tag

TOKEN_VALID = "valid"
TOKEN_EXPIRED = "expired"
TOKEN_WRONG_ADDRESS = "wrong_address"

RETRY_NEVER = "never"
RETRY_ALWAYS = "always"
RETRY_AUTO = "auto"
DEFAULT_RETRY_THRESHOLD = 64  # half-open connections at which "auto" turns Retry on


class TokenCheck(NamedTuple):
    """What a token of ours says: `status` is TOKEN_VALID, TOKEN_EXPIRED or
    TOKEN_WRONG_ADDRESS; the CIDs are those it was sealed with."""

    status: str
    original_dcid: bytes
    retry_scid: bytes


class RetryTokens:
    """Address-validation tokens for Retry (RFC 9000 §8.1.2); see the module header."""

    def __init__(self, key: bytes, entropy: Callable[[int], bytes], lifetime: float = RETRY_TOKEN_LIFETIME) -> None:
        self._aead = AESGCM(key)
        self._entropy = entropy
        self.lifetime = lifetime

    def seal(self, addr: Any, odcid: bytes, retry_scid: bytes, now: float) -> bytes:
        nonce = self._entropy(TOKEN_NONCE_LENGTH)
        plain = (
            _HEAD.pack(now, address_hash(addr))
            + bytes((len(odcid),)) + odcid
            + bytes((len(retry_scid),)) + retry_scid
        )
        return nonce + self._aead.encrypt(nonce, plain, _TOKEN_AAD)

    def check(self, token: bytes, addr: Any, now: float) -> Optional[TokenCheck]:
        """None if the token is not ours (does not open, or is malformed);
        else whether it is valid here and now, and its CIDs."""
        if len(token) < _MIN_TOKEN:
            return None
        try:
            plain = self._aead.decrypt(token[:TOKEN_NONCE_LENGTH], token[TOKEN_NONCE_LENGTH:], _TOKEN_AAD)
        except InvalidTag:
            return None
        try:
            issued, bound_to = _HEAD.unpack_from(plain)
            at = _HEAD.size
            n = plain[at]
            odcid = plain[at + 1 : at + 1 + n]
            m = plain[at + 1 + n]
            retry_scid = plain[at + 2 + n : at + 2 + n + m]
        except (struct.error, IndexError):
            return None
        if len(odcid) != n or len(retry_scid) != m:
            return None
        if bound_to != address_hash(addr):
            status = TOKEN_WRONG_ADDRESS
        elif not issued - 1.0 <= now <= issued + self.lifetime:
            status = TOKEN_EXPIRED  # (or issued in the future: a clock we do not trust)
        else:
            status = TOKEN_VALID
        return TokenCheck(status, odcid, retry_scid)

    def open(self, token: bytes, addr: Any, now: float) -> Optional[tuple[bytes, bytes]]:
        """(original DCID, Retry SCID) from a valid fresh token, else None."""
        checked = self.check(token, addr, now)
        if checked is None or checked.status != TOKEN_VALID:
            return None
        return checked.original_dcid, checked.retry_scid


class NewTokens:
    """Address-validation tokens for NEW_TOKEN (RFC 9000 §8.1.3); see the module header."""

    def __init__(self, key: bytes, entropy: Callable[[int], bytes], lifetime: float = NEW_TOKEN_LIFETIME) -> None:
        self._aead = AESGCM(key)
        self._entropy = entropy
        self.lifetime = lifetime

    def seal(self, addr: Any, now: float) -> bytes:
        nonce = self._entropy(TOKEN_NONCE_LENGTH)
        return nonce + self._aead.encrypt(nonce, _NEW_HEAD.pack(now, host_hash(addr)), _NEW_TOKEN_AAD)

    def valid(self, token: bytes, addr: Any, now: float) -> bool:
        """Ours, for this address's host, and fresh."""
        if len(token) != TOKEN_NONCE_LENGTH + _NEW_HEAD.size + 16:
            return False
        try:
            plain = self._aead.decrypt(token[:TOKEN_NONCE_LENGTH], token[TOKEN_NONCE_LENGTH:], _NEW_TOKEN_AAD)
        except InvalidTag:
            return False
        issued, bound_to = _NEW_HEAD.unpack(plain)
        return hmac.compare_digest(bound_to, host_hash(addr)) and issued - 1.0 <= now <= issued + self.lifetime


def host_hash(addr: Any) -> bytes:
    """The host alone (a NEW_TOKEN token is for the client's next connection,
    from another port)."""
    return hashlib.sha256(repr(tuple(addr)[:1]).encode()).digest()[:ADDRESS_HASH_LENGTH]


def address_hash(addr: Any) -> bytes:
    """Host and port (flow info and scope of IPv6 tuples left out)."""
    return hashlib.sha256(repr(tuple(addr)[:2]).encode()).digest()[:ADDRESS_HASH_LENGTH]


class RetryPolicy:
    """When to answer a new client with Retry; see the module header.
    `retry` may be a mode name or a bool (True: "always", False: "never")."""

    def __init__(self, retry: Any = RETRY_AUTO, threshold: int = DEFAULT_RETRY_THRESHOLD,
                 release: Optional[int] = None) -> None:
        if retry is True:
            retry = RETRY_ALWAYS
        elif retry is False or retry is None:
            retry = RETRY_NEVER
        if retry not in (RETRY_NEVER, RETRY_ALWAYS, RETRY_AUTO):
            raise ValueError(f"retry must be 'never', 'always', 'auto' or a bool, not {retry!r}")
        if threshold < 1:
            raise ValueError("retry_threshold must be at least 1")
        self.mode = retry
        self.threshold = threshold
        self.release = max(1, threshold // 2) if release is None else release
        if not 0 <= self.release <= threshold:
            raise ValueError("the release level must be between 0 and retry_threshold")
        self.active = retry == RETRY_ALWAYS

    def wants_retry(self, half_open: int) -> bool:
        """Whether a client without a valid token gets a Retry now, with
        `half_open` connections whose handshake is not complete."""
        if self.mode == RETRY_AUTO:
            if self.active:
                self.active = half_open >= self.release
            else:
                self.active = half_open >= self.threshold
        return self.active

    @property
    def allows_retry(self) -> bool:
        return self.mode != RETRY_NEVER


__all__ = [
    "NewTokens",
    "NEW_TOKEN_LIFETIME",
    "RetryPolicy",
    "RetryTokens",
    "TokenCheck",
    "address_hash",
    "host_hash",
    "RETRY_ALWAYS",
    "RETRY_AUTO",
    "RETRY_NEVER",
    "TOKEN_EXPIRED",
    "TOKEN_VALID",
    "TOKEN_WRONG_ADDRESS",
]
