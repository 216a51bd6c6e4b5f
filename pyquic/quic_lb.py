# Routable connection IDs (QUIC-LB, draft-ietf-quic-load-balancers): a
# server behind a QUIC-LB-aware layer-4 load balancer writes its server ID
# into every connection ID it issues, so the balancer routes every packet of
# a connection (after migration and rotation too) with no per-connection
# state.  Owns
#   - LbConfig: one configuration (its config rotation codepoint, server ID
#     and nonce lengths, an optional AES-128 key, and what the five low bits
#     of the first octet carry: the length, or free bits for the server's
#     own use, such as a worker index);
#   - LbEncoder: the server's side, a connection-ID generator for
#     QuicConfiguration.connection_id_generator: first octet, then server ID
#     and nonce in plaintext, or encrypted (one AES-ECB block when they fill
#     16 octets exactly, else the draft's four-pass Feistel network with
#     AES-ECB rounds);
#   - decode_server_id(): the balancer's side (and the tests'), three or four
#     passes back.
# Nonces: a counter from a random start when there is a key (never repeats
# within 2^(8 * nonce_length) IDs; the cipher hides it), random bytes when
# there is none (the draft: no observable relation between IDs).
# AES comes from `cryptography`; nothing here does I/O.
#
#   config = LbConfig(config_id=0, server_id_length=3, nonce_length=4, key=key)
#   generate = LbEncoder(config, server_id=b"\x31\x44\x1a", entropy=os.urandom)
#   cid = generate()                                 # 8 octets
#   decode_server_id(config, cid) == b"\x31\x44\x1a"
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import UsageError

__all__ = ["LbConfig", "LbEncoder", "UNROUTABLE_CONFIG_ID", "decode_server_id"]

UNROUTABLE_CONFIG_ID = 0b111  # §3.2: reserved: "no configuration"
MAX_PLAINTEXT = 19  # QUIC v1's 20-octet limit, less the first octet


@dataclass(frozen=True)
class LbConfig:
    config_id: int  # the three config rotation bits, 0..6
    server_id_length: int  # octets, at least 1
    nonce_length: int  # octets, at least 4; server ID + nonce at most 19
    key: Optional[bytes] = None  # 16 octets: encrypted IDs; None: plaintext (the server is visible)
    encode_length: bool = True  # the first octet's low five bits say the length; else they are free

    def __post_init__(self) -> None:
        if not 0 <= self.config_id < UNROUTABLE_CONFIG_ID:
            raise UsageError("QUIC-LB config_id must be 0..6 (7 means unroutable)")
        if self.server_id_length < 1 or self.nonce_length < 4:
            raise UsageError("QUIC-LB needs a server ID of at least 1 octet and a nonce of at least 4")
        if self.server_id_length + self.nonce_length > MAX_PLAINTEXT:
            raise UsageError("QUIC-LB server ID and nonce may take 19 octets at most")
        if self.key is not None and len(self.key) != 16:
            raise UsageError("a QUIC-LB key is 16 octets (AES-128)")

    @property
    def plaintext_length(self) -> int:
        return self.server_id_length + self.nonce_length

    @property
    def cid_length(self) -> int:
        return 1 + self.plaintext_length


def _aes(key: bytes) -> Callable[[bytes], bytes]:
    """One AES-128-ECB block, with the key scheduled once."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class _Feistel:
    """The draft's four-pass network over `length` octets (not 16), both ways."""

    def __init__(self, key: bytes, length: int) -> None:
        self.aes = _aes(key)
        self.length = length
        self.half = (length + 1) // 2
        self.odd = length % 2 == 1

    def _round(self, half: bytes, pass_number: int) -> bytes:
        # expand(): the half, zero padding, the length, the pass number (16 octets)
        block = half + bytes(14 - len(half)) + bytes((self.length, pass_number))
        return self.aes(block)[: self.half]

    def _clear_left(self, left: bytes) -> bytes:  # an odd length: the left half's last four bits
        return left[:-1] + bytes((left[-1] & 0xF0,)) if self.odd else left

    def _clear_right(self, right: bytes) -> bytes:  # ... and the right half's first four bits
        return bytes((right[0] & 0x0F,)) + right[1:] if self.odd else right

    def _split(self, data: bytes) -> tuple[bytes, bytes]:
        half = self.half
        if not self.odd:
            return data[:half], data[half:]
        left = data[:half - 1] + bytes((data[half - 1] & 0xF0,))
        right = bytes((data[half - 1] & 0x0F,)) + data[half:]
        return left, right

    def _join(self, left: bytes, right: bytes) -> bytes:
        if not self.odd:
            return left + right
        return left[:-1] + bytes((left[-1] | right[0],)) + right[1:]

    def encrypt(self, plaintext: bytes) -> bytes:
        left0, right0 = self._split(plaintext)
        right1 = self._clear_right(_xor(right0, self._round(left0, 1)))
        left1 = self._clear_left(_xor(left0, self._round(right1, 2)))
        right2 = self._clear_right(_xor(right1, self._round(left1, 3)))
        left2 = self._clear_left(_xor(left1, self._round(right2, 4)))
        return self._join(left2, right2)

    def decrypt(self, ciphertext: bytes) -> bytes:
        left2, right2 = self._split(ciphertext)
        left1 = self._clear_left(_xor(left2, self._round(right2, 4)))
        right1 = self._clear_right(_xor(right2, self._round(left1, 3)))
        left0 = self._clear_left(_xor(left1, self._round(right1, 2)))
        right0 = self._clear_right(_xor(right1, self._round(left0, 1)))
        return self._join(left0, right0)


class LbEncoder:
    """Connection IDs for one server under one configuration: call it for
    each new ID.  `low_bits` (0..31) fill the first octet's five low bits
    when the configuration does not encode the length there (a worker index
    for SO_REUSEPORT steering, say); else they are random."""

    def __init__(self, config: LbConfig, server_id: bytes, entropy: Callable[[int], bytes],
                 low_bits: Optional[int] = None) -> None:
        if len(server_id) != config.server_id_length:
            raise UsageError(f"the server ID must be {config.server_id_length} octets")
        if low_bits is not None and (config.encode_length or not 0 <= low_bits < 32):
            raise UsageError("low_bits (0..31) need a configuration that does not encode the length")
        self.config = config
        self.server_id = bytes(server_id)
        self.entropy = entropy
        self.low_bits = low_bits
        self.length = config.cid_length
        self._block = _aes(config.key) if config.key is not None and config.plaintext_length == 16 else None
        self._feistel = _Feistel(config.key, config.plaintext_length) \
            if config.key is not None and config.plaintext_length != 16 else None
        self._counter = int.from_bytes(entropy(config.nonce_length), "big")

    def first_octet(self) -> int:
        if self.config.encode_length:
            low = self.config.plaintext_length
        elif self.low_bits is not None:
            low = self.low_bits
        else:
            low = self.entropy(1)[0] & 0x1F
        return self.config.config_id << 5 | low

    def _nonce(self) -> bytes:
        n = self.config.nonce_length
        if self.config.key is None:
            return self.entropy(n)  # no cipher to hide a counter
        self._counter = (self._counter + 1) % (1 << (8 * n))
        return self._counter.to_bytes(n, "big")

    def encode(self, nonce: bytes, first_octet: Optional[int] = None) -> bytes:
        """The ID for this server and `nonce` (the tests pass the draft's)."""
        plaintext = self.server_id + nonce
        if self._block is not None:
            body = self._block(plaintext)
        elif self._feistel is not None:
            body = self._feistel.encrypt(plaintext)
        else:
            body = plaintext
        return bytes((self.first_octet() if first_octet is None else first_octet,)) + body

    def __call__(self) -> bytes:
        return self.encode(self._nonce())


@functools.lru_cache(maxsize=16)
def _opener(config: LbConfig) -> Callable[[bytes], bytes]:
    """How one configuration's ID bodies are opened, its key scheduled once
    (a balancer opens one per datagram)."""
    if config.key is None:
        return lambda body: body
    if config.plaintext_length == 16:
        return Cipher(algorithms.AES(config.key), modes.ECB()).decryptor().update
    return _Feistel(config.key, config.plaintext_length).decrypt


def decode_server_id(config: LbConfig, cid: bytes) -> Optional[bytes]:
    """The balancer's view: the server ID in `cid`, or None when the ID is
    not one of this configuration's (another codepoint, or too short)."""
    if len(cid) < config.cid_length or cid[0] >> 5 != config.config_id:
        return None
    return _opener(config)(bytes(cid[1 : config.cid_length]))[: config.server_id_length]
