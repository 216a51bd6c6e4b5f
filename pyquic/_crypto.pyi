# The packet-protection API shared by pyquic._crypto (C, OpenSSL libcrypto) and
# pyquic._crypto_py (pure Python on `cryptography`).  RFC 9001 §5.
#
# Cipher suites are named by their TLS code points:
#   0x1301 TLS_AES_128_GCM_SHA256        key 16, hp key 16, AES-128-ECB mask
#   0x1302 TLS_AES_256_GCM_SHA384        key 32, hp key 32, AES-256-ECB mask
#   0x1303 TLS_CHACHA20_POLY1305_SHA256  key 32, hp key 32, ChaCha20 mask
# The iv is always 12 bytes; the AEAD tag always 16.  The nonce is the iv XOR
# the packet number left-padded to 12 bytes (big-endian).
#
# "Buffer" below means any object with the buffer protocol (bytes, bytearray,
# memoryview, ...).  It is read without copying.  Every length is checked in
# the implementation; any malformed or too-short input, and any failed
# authentication, raises CryptoError and never reads past a buffer.
#
# Errors, the same in both implementations (CryptoError messages included):
#   CryptoError: a value is wrong: a length, an offset, an int out of range
#     (packet numbers are 0 <= pn < 2**62, largest_pn is -1 <= n < 2**62), an
#     unsupported cipher suite, a buffer that is not contiguous, an `out`
#     buffer that is read-only or too small, or failed authentication.
#   TypeError: an argument of the wrong kind: not a buffer, not an int, a batch
#     item that is not a 3-tuple, a missing or unknown argument.
# Every argument may also be passed by keyword.
#
# Threads: objects may be shared between threads.  Only PacketProtection's
# batch calls release the GIL (in the C implementation), holding a per-object
# lock meanwhile; the other calls are serialised by the GIL.
from collections.abc import Sequence
from typing import Optional, Union

Buffer = Union[bytes, bytearray, memoryview]

AES_128_GCM: int  # 0x1301
AES_256_GCM: int  # 0x1302
CHACHA20_POLY1305: int  # 0x1303
TAG_LENGTH: int  # 16
SAMPLE_LENGTH: int  # 16
IV_LENGTH: int  # 12 (added)
IMPLEMENTATION: str  # "c" or "python"
OPENSSL_VERSION: str  # the libcrypto behind this implementation, e.g. "OpenSSL 3.0.19 27 Jan 2026" (added)

class CryptoError(ValueError): ...

class AEAD:
    """Packet payload protection for one key and iv."""

    cipher_suite: int
    tag_length: int  # 16
    # RFC 9001 §6.6: packets that may be sealed / forged attempts tolerated.
    confidentiality_limit: int  # 2**23 for AES-GCM, 2**62 for ChaCha20-Poly1305
    integrity_limit: int  # 2**52 for AES-GCM, 2**36 for ChaCha20-Poly1305

    def __init__(self, cipher_suite: int, key: Buffer, iv: Buffer) -> None: ...
    def seal(self, packet_number: int, associated_data: Buffer, plaintext: Buffer) -> bytes:
        """Ciphertext followed by the 16-byte tag."""
    def seal_into(
        self, out: Buffer, offset: int, packet_number: int, associated_data: Buffer, plaintext: Buffer
    ) -> int:
        """Write ciphertext||tag into writable `out` at `offset`; returns bytes written.
        The inputs may alias `out`: sealing in place (plaintext already at `offset`)
        and any other overlap give the same bytes as seal()."""
    def open(self, packet_number: int, associated_data: Buffer, ciphertext: Buffer) -> bytes:
        """Plaintext; CryptoError if the input is shorter than a tag or does not authenticate."""

class HeaderProtection:
    """Header protection (RFC 9001 §5.4) for one hp key."""

    cipher_suite: int

    def __init__(self, cipher_suite: int, hp_key: Buffer) -> None: ...
    def mask(self, sample: Buffer) -> bytes:
        """The 5-byte mask for a 16-byte sample."""
    def apply(self, packet: Buffer, pn_offset: int) -> bytes:
        """A new protected copy of `packet`, whose header is in the clear with its
        packet number length in the low two bits of the first byte.  The sample
        starts at pn_offset + 4, so the packet needs pn_offset + 20 bytes."""
    def remove(self, packet: Buffer, pn_offset: int) -> tuple[bytes, int]:
        """(plain header up to and including the packet number, truncated packet number).
        `packet` is not modified."""

class PacketProtection:
    """AEAD and header protection together: the per-packet hot path."""

    cipher_suite: int
    tag_length: int
    confidentiality_limit: int
    integrity_limit: int

    def __init__(self, cipher_suite: int, key: Buffer, iv: Buffer, hp_key: Buffer) -> None: ...
    def protect(self, header: Buffer, payload: Buffer, packet_number: int) -> bytes:
        """`header` is the plain header ending with the packet number, whose length
        is (header[0] & 3) + 1.  Returns the whole protected packet:
        len(header) + len(payload) + 16 bytes.  The payload must be long enough for
        a sample: len(payload) + 16 >= 4 - pn_length + 16."""
    def protect_into(
        self, out: Buffer, offset: int, header: Buffer, payload: Buffer, packet_number: int
    ) -> int:
        """The same, written into writable `out` at `offset`; returns bytes written.
        The inputs may alias `out`: protecting in place (header at `offset`, payload
        right after it) and any other overlap give the same bytes as protect()."""
    def protect_batch(self, packets: Sequence[tuple[Buffer, Buffer, int]]) -> bytes:
        """Protect many (header, payload, packet_number) packets that share these keys,
        in one call; returns the protected packets back to back (for one GSO write)."""
    def protect_stream_run(
        self, header_start: Buffer, packet_number: int, frames: Sequence[tuple[int, int, Buffer, bool]],
        room: int, pad_below: int,
    ) -> tuple[bytes, tuple[int, ...]]:
        """The bulk sender's packets in one call: a 1-RTT packet per
        (stream_id, offset, data, fin) frame, numbered from packet_number,
        each header_start (first byte, whose low bits give the packet number
        length, and the DCID) + the truncated packet number, each payload the
        STREAM frame (with its length; the offset when not 0), zero-padded
        (PADDING) to `room` when it falls short of it by less than pad_below,
        and to the 4 - pn_len bytes a sample needs.  A frame longer than
        `room` raises CryptoError.  Returns (the protected packets back to
        back, their sizes): what protect_batch gives for the same packets."""
    def unprotect(self, packet: Buffer, pn_offset: int, largest_pn: int) -> tuple[bytes, bytes, int]:
        """Remove header protection and open one packet that fills `packet` exactly.
        The full packet number is decoded against `largest_pn` (RFC 9000 A.3; pass
        -1 when none was received).  Returns (plain header, payload, packet number)."""
    def unprotect_batch(
        self, buffer: Buffer, segments: Sequence[tuple[int, int, int]], largest_pn: int
    ) -> list[Optional[tuple[bytes, bytes, int]]]:
        """Open many packets that share these keys, each given as
        (offset, length, pn_offset relative to the packet) within `buffer`
        (a GRO buffer, or the coalesced packets of one datagram), in one call.
        Each result is as for unprotect, or None where that packet failed
        (header too short, or authentication failed: the caller may retry it
        with the next key phase).  largest_pn advances as packets open.
        A segment reaching outside `buffer`, or a pn_offset below 1, raises
        CryptoError for the whole call (a caller's bug, not the peer's); a
        pn_offset that leaves no room for the sample yields None."""

def decode_packet_number(truncated: int, pn_length: int, largest_pn: int) -> int:
    """RFC 9000 Appendix A.3.  pn_length is in bytes (1..4); largest_pn is -1 when
    none was received.  The result is always below 2**62: where the RFC's
    pseudocode would give 2**62 or more (only after largest_pn = 2**62 - 1), the
    candidate one window lower is returned."""
