# pyquic._crypto_py: the pure-Python twin of pyquic._crypto (QUIC packet
# protection, RFC 9001 §5) on `cryptography`.
#
# It owns the same API as the C extension (pyquic/_crypto.pyi) with the same
# validation: a bad length, offset or range raises CryptoError (a ValueError),
# a wrong Python type raises TypeError, failed authentication raises
# CryptoError.  It is used where the extension cannot be built and as the
# reference the C code is tested against; tests/test_crypto_properties.py
# checks that both produce identical bytes.  Keys live inside `cryptography`
# objects, so unlike the C code this module cannot cleanse them on free.
from __future__ import annotations

import threading
from collections.abc import Sequence
from operator import index
from typing import Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.backends.openssl import backend as _backend
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .frames import stream_frame_header

Buffer = Union[bytes, bytearray, memoryview]

AES_128_GCM = 0x1301
AES_256_GCM = 0x1302
CHACHA20_POLY1305 = 0x1303
TAG_LENGTH = 16
SAMPLE_LENGTH = 16
IV_LENGTH = 12
IMPLEMENTATION = "python"
OPENSSL_VERSION = _backend.openssl_version_text()

_PN_MAX_LENGTH = 4
_PN_LIMIT = 1 << 62  # RFC 9000 §12.3: packet numbers are below 2^62
_LLONG_MAX = (1 << 63) - 1
_SSIZE_MAX = (1 << 63) - 1
_MAX_LEN = (1 << 31) - 1 - 64  # the C code's limit (EVP takes int lengths)
_ZEROS5 = bytes(5)


class CryptoError(ValueError):
    """Malformed input or failed authentication in packet protection."""


# suite -> (name, key length, confidentiality limit, integrity limit); RFC 9001 §6.6
_SUITES = {
    AES_128_GCM: ("AES-128-GCM", 16, 1 << 23, 1 << 52),
    AES_256_GCM: ("AES-256-GCM", 32, 1 << 23, 1 << 52),
    CHACHA20_POLY1305: ("ChaCha20-Poly1305", 32, 1 << 62, 1 << 36),
}


# ------------------------------------------------------------------ helpers


def _int(value: object, name: str, lo: int, hi: int) -> int:
    """An int in [lo, hi]: TypeError if not an int, CryptoError if out of range."""
    if type(value) is not int:
        value = index(value)  # type: ignore[arg-type]
    if not lo <= value <= hi:  # type: ignore[operator]
        raise CryptoError(f"{name} must be between {lo} and {hi}")
    return value  # type: ignore[return-value]


def _pn(value: object) -> int:
    return _int(value, "packet_number", 0, _PN_LIMIT - 1)


def _view(obj: object, name: str, writable: bool = False) -> Buffer:
    """A flat byte view of a contiguous buffer, like PyObject_GetBuffer(PyBUF_SIMPLE)."""
    if type(obj) is bytes and not writable:
        view: Buffer = obj
    else:
        view = memoryview(obj)  # type: ignore[arg-type]  # TypeError if not a buffer
        if not view.c_contiguous or (writable and view.readonly):
            what = "a writable contiguous" if writable else "a contiguous"
            raise CryptoError(f"{name} must be {what} buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
    if len(view) > _MAX_LEN:
        raise CryptoError(f"{name} is too long")
    return view


def _suite(value: object) -> tuple[str, int, int, int]:
    if type(value) is not int:
        value = index(value)  # type: ignore[arg-type]
    try:
        return _SUITES[value]  # type: ignore[index]
    except KeyError:
        raise CryptoError(f"unsupported cipher suite {value!r}") from None


def _check_len(name: str, got: int, want: int) -> None:
    if got != want:
        raise CryptoError(f"{name} must be {want} bytes, got {got}")


def _check_sample(length: int, pn_offset: int) -> None:
    # RFC 9001 §5.4.2: the 16-byte sample starts 4 bytes after the packet number starts.
    if pn_offset > length - _PN_MAX_LENGTH - SAMPLE_LENGTH:
        raise CryptoError(f"packet of {length} bytes is too short to sample at pn_offset {pn_offset}")


def _out_region(out: Buffer, offset: int, n: int) -> None:
    available = len(out) - offset
    if n > available:
        raise CryptoError(
            f"out is too small: {n} bytes needed at offset {offset}, {max(available, 0)} available"
        )


def _decode_pn(truncated: int, pn_nbits: int, largest_pn: int) -> int:
    # RFC 9000 Appendix A.3.  One case its pseudocode leaves open: after
    # largest_pn = 2^62 - 1 it returns 2^62 | truncated; packet numbers stop at
    # 2^62 - 1 (§12.3), so the window below is the closest valid answer.
    expected = largest_pn + 1
    win = 1 << pn_nbits
    hwin = win // 2
    candidate = (expected & ~(win - 1)) | truncated
    if candidate <= expected - hwin and candidate < _PN_LIMIT - win:
        return candidate + win
    if (candidate > expected + hwin and candidate >= win) or candidate >= _PN_LIMIT:
        return candidate - win
    return candidate


def decode_packet_number(truncated: int, pn_length: int, largest_pn: int) -> int:
    """RFC 9000 Appendix A.3; pn_length in bytes (1..4), largest_pn -1 if none."""
    pn_length = _int(pn_length, "pn_length", 1, _PN_MAX_LENGTH)
    truncated = _int(truncated, "truncated", 0, (1 << (8 * pn_length)) - 1)
    largest_pn = _int(largest_pn, "largest_pn", -1, _PN_LIMIT - 1)
    return _decode_pn(truncated, 8 * pn_length, largest_pn)


# --------------------------------------------------------------------- AEAD


class AEAD:
    """Packet payload protection for one key and iv (RFC 9001 §5.3)."""

    __slots__ = ("cipher_suite", "tag_length", "confidentiality_limit", "integrity_limit", "_aead", "_iv")

    def __init__(self, cipher_suite: int, key: Buffer, iv: Buffer) -> None:
        suite = _suite(cipher_suite)
        key, iv = _view(key, "key"), _view(iv, "iv")
        _check_len("key", len(key), suite[1])
        _check_len("iv", len(iv), IV_LENGTH)
        self._init(index(cipher_suite), suite, key, iv)

    def _init(self, cipher_suite: int, suite: tuple[str, int, int, int], key: Buffer, iv: Buffer) -> None:
        self.cipher_suite = cipher_suite
        self.tag_length = TAG_LENGTH
        self.confidentiality_limit = suite[2]
        self.integrity_limit = suite[3]
        self._aead = ChaCha20Poly1305(key) if cipher_suite == CHACHA20_POLY1305 else AESGCM(key)
        self._iv = int.from_bytes(iv, "big")

    def _nonce(self, pn: int) -> bytes:
        # RFC 9001 §5.3: iv XOR the packet number left-padded to the iv length.
        return (self._iv ^ pn).to_bytes(IV_LENGTH, "big")

    def seal(self, packet_number: int, associated_data: Buffer, plaintext: Buffer) -> bytes:
        nonce = self._nonce(_pn(packet_number))
        aad = _view(associated_data, "associated_data")
        return self._aead.encrypt(nonce, _view(plaintext, "plaintext"), aad)

    def seal_into(
        self, out: Buffer, offset: int, packet_number: int, associated_data: Buffer, plaintext: Buffer
    ) -> int:
        offset = _int(offset, "offset", 0, _SSIZE_MAX)
        nonce = self._nonce(_pn(packet_number))
        out = _view(out, "out", writable=True)
        aad = _view(associated_data, "associated_data")
        plaintext = _view(plaintext, "plaintext")
        n = len(plaintext) + TAG_LENGTH
        _out_region(out, offset, n)
        # Sealed into a new object first: the inputs may overlap `out`.
        out[offset : offset + n] = self._aead.encrypt(nonce, plaintext, aad)  # type: ignore[index]
        return n

    def open(self, packet_number: int, associated_data: Buffer, ciphertext: Buffer) -> bytes:
        nonce = self._nonce(_pn(packet_number))
        aad = _view(associated_data, "associated_data")
        ciphertext = _view(ciphertext, "ciphertext")
        if len(ciphertext) < TAG_LENGTH:
            raise CryptoError(f"ciphertext of {len(ciphertext)} bytes is shorter than the {TAG_LENGTH}-byte tag")
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise CryptoError("authentication failed") from None


# -------------------------------------------------------- HeaderProtection


class HeaderProtection:
    """Header protection (RFC 9001 §5.4) for one hp key."""

    __slots__ = ("cipher_suite", "_encryptor", "_chacha", "_lock")

    def __init__(self, cipher_suite: int, hp_key: Buffer) -> None:
        suite = _suite(cipher_suite)
        key = _view(hp_key, "hp_key")
        _check_len("hp_key", len(key), suite[1])
        self._init(index(cipher_suite), bytes(key))

    def _init(self, cipher_suite: int, key: bytes) -> None:
        self.cipher_suite = cipher_suite
        # One cipher context serves every mask, and `cryptography` may release
        # the GIL inside it: without the lock, threads sharing this object get
        # "Already borrowed" errors or masks of another thread's sample.
        self._lock = threading.Lock()
        self._chacha = self.cipher_suite == CHACHA20_POLY1305
        if self._chacha:
            # §5.4.4: the 16-byte ChaCha20 IV (counter LE32 || nonce) is the sample;
            # it is replaced for every packet by reset_nonce.
            self._encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
        else:
            # §5.4.3: one AES-ECB block of the sample.
            self._encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

    def _mask(self, sample: Buffer) -> bytes:
        with self._lock:
            if self._chacha:
                self._encryptor.reset_nonce(bytes(sample))  # type: ignore[attr-defined]
                return self._encryptor.update(_ZEROS5)
            return self._encryptor.update(sample)[:5]

    # The header is masked as one big integer: the first byte's low bits and the
    # packet number bytes at the end, in a single XOR without per-byte work.

    def _protect_header(self, header: Buffer, pn_len: int, mask: bytes) -> bytes:
        """A protected copy of a plain header ending with its packet number."""
        n = len(header)
        # §5.4.1: long headers (0x80 set) mask 4 bits of the first byte, short ones 5.
        bits = 0x0F if header[0] & 0x80 else 0x1F
        m = (mask[0] & bits) << (8 * n - 8) | int.from_bytes(mask[1 : 1 + pn_len], "big")
        return (int.from_bytes(header, "big") ^ m).to_bytes(n, "big")

    def _remove(self, packet: Buffer, pn_offset: int) -> tuple[bytes, int]:
        sample_at = pn_offset + _PN_MAX_LENGTH
        mask = self._mask(packet[sample_at : sample_at + SAMPLE_LENGTH])
        bits = mask[0] & (0x0F if packet[0] & 0x80 else 0x1F)
        pn_len = ((packet[0] ^ bits) & 0x03) + 1  # known only once the first byte is unmasked
        n = pn_offset + pn_len
        plain = int.from_bytes(packet[:n], "big") ^ (bits << (8 * n - 8) | int.from_bytes(mask[1 : 1 + pn_len], "big"))
        return plain.to_bytes(n, "big"), plain & ((1 << (8 * pn_len)) - 1)

    def mask(self, sample: Buffer) -> bytes:
        sample = _view(sample, "sample")
        _check_len("sample", len(sample), SAMPLE_LENGTH)
        return self._mask(sample)

    def apply(self, packet: Buffer, pn_offset: int) -> bytes:
        pn_offset = _int(pn_offset, "pn_offset", 1, _LLONG_MAX)
        packet = _view(packet, "packet")
        _check_sample(len(packet), pn_offset)
        end = pn_offset + (packet[0] & 0x03) + 1
        sample_at = pn_offset + _PN_MAX_LENGTH
        mask = self._mask(packet[sample_at : sample_at + SAMPLE_LENGTH])
        return self._protect_header(packet[:end], end - pn_offset, mask) + packet[end:]

    def remove(self, packet: Buffer, pn_offset: int) -> tuple[bytes, int]:
        pn_offset = _int(pn_offset, "pn_offset", 1, _LLONG_MAX)
        packet = _view(packet, "packet")
        _check_sample(len(packet), pn_offset)
        return self._remove(packet, pn_offset)


# -------------------------------------------------------- PacketProtection


def _check_protect(header: Buffer, payload_length: int) -> int:
    """The packet number length of a plain header; CryptoError if it cannot be protected."""
    pn_len = (header[0] & 0x03) + 1 if len(header) else 1
    if len(header) < 1 + pn_len:
        raise CryptoError(
            f"header of {len(header)} bytes is too short for a first byte and its {pn_len}-byte packet number"
        )
    # §5.4.2: payload + tag must reach 4 - pn_len + 16 bytes past the packet number.
    if payload_length < _PN_MAX_LENGTH - pn_len:
        raise CryptoError(
            f"payload of {payload_length} bytes is too short to sample: at least {_PN_MAX_LENGTH - pn_len} needed"
        )
    if payload_length > _MAX_LEN - len(header):
        raise CryptoError("packet is too long")
    return pn_len


class PacketProtection:
    """AEAD and header protection together: the per-packet path."""

    __slots__ = ("cipher_suite", "tag_length", "confidentiality_limit", "integrity_limit", "_aead", "_hp")

    def __init__(self, cipher_suite: int, key: Buffer, iv: Buffer, hp_key: Buffer) -> None:
        suite = _suite(cipher_suite)
        key, iv, hp_key = _view(key, "key"), _view(iv, "iv"), _view(hp_key, "hp_key")
        _check_len("key", len(key), suite[1])
        _check_len("hp_key", len(hp_key), suite[1])
        _check_len("iv", len(iv), IV_LENGTH)
        cipher_suite = index(cipher_suite)
        self._aead = AEAD.__new__(AEAD)
        self._aead._init(cipher_suite, suite, key, iv)
        self._hp = HeaderProtection.__new__(HeaderProtection)
        self._hp._init(cipher_suite, bytes(hp_key))
        self.cipher_suite = cipher_suite
        self.tag_length = TAG_LENGTH
        self.confidentiality_limit = suite[2]
        self.integrity_limit = suite[3]

    def _protect(self, header: Buffer, pn_len: int, payload: Buffer, pn: int) -> tuple[bytes, bytes]:
        """(protected header, ciphertext || tag), kept apart so callers copy the bulk once."""
        aead = self._aead
        sealed = aead._aead.encrypt(aead._nonce(pn), payload, header)
        # §5.4.2: the sample starts 4 bytes after the packet number starts.
        sample_at = _PN_MAX_LENGTH - pn_len
        mask = self._hp._mask(sealed[sample_at : sample_at + SAMPLE_LENGTH])
        return self._hp._protect_header(header, pn_len, mask), sealed

    def protect(self, header: Buffer, payload: Buffer, packet_number: int) -> bytes:
        pn = _pn(packet_number)
        header = _view(header, "header")
        payload = _view(payload, "payload")
        protected, sealed = self._protect(header, _check_protect(header, len(payload)), payload, pn)
        return protected + sealed

    def protect_into(
        self, out: Buffer, offset: int, header: Buffer, payload: Buffer, packet_number: int
    ) -> int:
        offset = _int(offset, "offset", 0, _SSIZE_MAX)
        pn = _pn(packet_number)
        out = _view(out, "out", writable=True)
        header = _view(header, "header")
        payload = _view(payload, "payload")
        pn_len = _check_protect(header, len(payload))
        total = len(header) + len(payload) + TAG_LENGTH
        _out_region(out, offset, total)
        # Built apart, then copied: the inputs may overlap `out` (e.g. in place).
        protected, sealed = self._protect(header, pn_len, payload, pn)
        out[offset : offset + len(protected)] = protected  # type: ignore[index]
        out[offset + len(protected) : offset + total] = sealed  # type: ignore[index]
        return total

    def protect_batch(self, packets: Sequence[tuple[Buffer, Buffer, int]]) -> bytes:
        checked = []
        for i, item in enumerate(tuple(packets)):
            if not isinstance(item, tuple) or len(item) != 3:
                raise TypeError(f"packets[{i}] must be a (header, payload, packet_number) tuple")
            pn = _pn(item[2])
            header = _view(item[0], "header")
            payload = _view(item[1], "payload")
            checked.append((header, _check_protect(header, len(payload)), payload, pn))
        if sum(len(h) + len(p) + TAG_LENGTH for h, _, p, _ in checked) > _MAX_LEN:
            raise CryptoError("batch is too long")
        return b"".join([part for c in checked for part in self._protect(*c)])

    def protect_stream_run(
        self, header_start: Buffer, packet_number: int, frames: Sequence[tuple[int, int, Buffer, bool]],
        room: int, pad_below: int,
    ) -> tuple[bytes, tuple[int, ...]]:
        pn = _pn(packet_number)
        room = _int(room, "room", 0, _MAX_LEN)
        pad_below = _int(pad_below, "pad_below", 0, _MAX_LEN)
        header_start = bytes(_view(header_start, "header_start"))
        frames = tuple(frames)
        if not 1 <= len(header_start) <= 64:
            raise CryptoError(f"header_start of {len(header_start)} bytes: a first byte and a connection ID are 1 to 64")
        if frames and pn + len(frames) - 1 >= _PN_LIMIT:
            raise CryptoError("packet numbers would reach 2^62")
        pn_len = (header_start[0] & 0x03) + 1
        packets, sizes = [], []
        for i, item in enumerate(frames):
            if not isinstance(item, tuple) or len(item) != 4:
                raise TypeError(f"frames[{i}] must be a (stream_id, offset, data, fin) tuple")
            stream_id = _int(item[0], "stream_id", 0, _PN_LIMIT - 1)
            offset = _int(item[1], "offset", 0, _PN_LIMIT - 1)
            fin = bool(item[3])
            data = _view(item[2], "data")
            if len(data) > _PN_LIMIT - 1 - offset:
                raise CryptoError("stream offset + length above 2^62 - 1")
            # The project's own STREAM frame codec: the C code must agree with it.
            frame = stream_frame_header(stream_id, offset, len(data), fin) + bytes(data)
            if len(frame) > room:
                raise CryptoError(f"frames[{i}]: a STREAM frame of {len(frame)} bytes does not fit in {room}")
            length = room if 0 < room - len(frame) < pad_below else len(frame)
            length = max(length, _PN_MAX_LENGTH - pn_len)
            header = header_start + ((pn + i) & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
            packets.append((header, frame + bytes(length - len(frame)), pn + i))
            sizes.append(len(header) + length + TAG_LENGTH)
        if sum(sizes) > _MAX_LEN:
            raise CryptoError("run is too long")
        return self.protect_batch(packets), tuple(sizes)

    def _unprotect(self, packet: Buffer, pn_offset: int, largest_pn: int) -> tuple[bytes, bytes, int]:
        header, truncated = self._hp._remove(packet, pn_offset)
        pn = _decode_pn(truncated, 8 * ((header[0] & 0x03) + 1), largest_pn)
        try:
            payload = self._aead._aead.decrypt(self._aead._nonce(pn), packet[len(header) :], header)
        except InvalidTag:
            raise CryptoError("packet authentication failed") from None
        return header, payload, pn

    def unprotect(self, packet: Buffer, pn_offset: int, largest_pn: int) -> tuple[bytes, bytes, int]:
        pn_offset = _int(pn_offset, "pn_offset", 1, _LLONG_MAX)
        largest_pn = _int(largest_pn, "largest_pn", -1, _PN_LIMIT - 1)
        packet = _view(packet, "packet")
        _check_sample(len(packet), pn_offset)
        if type(packet) is bytes:
            packet = memoryview(packet)  # slices without copying
        return self._unprotect(packet, pn_offset, largest_pn)

    def unprotect_batch(
        self, buffer: Buffer, segments: Sequence[tuple[int, int, int]], largest_pn: int
    ) -> list[Optional[tuple[bytes, bytes, int]]]:
        largest_pn = _int(largest_pn, "largest_pn", -1, _PN_LIMIT - 1)
        segments = tuple(segments)
        view = memoryview(_view(buffer, "buffer"))
        # A segment outside the buffer is a caller's bug and fails the whole call;
        # a packet too short to sample is the peer's problem and yields None.
        checked = []
        for i, item in enumerate(segments):
            if not isinstance(item, tuple) or len(item) != 3:
                raise TypeError(f"segments[{i}] must be an (offset, length, pn_offset) tuple")
            offset = _int(item[0], "segment offset", 0, len(view))
            length = _int(item[1], "segment length", 0, len(view) - offset)
            pn_offset = _int(item[2], "segment pn_offset", 1, _LLONG_MAX)
            checked.append((offset, length, pn_offset))
        results: list[Optional[tuple[bytes, bytes, int]]] = []
        for offset, length, pn_offset in checked:
            result = None
            if pn_offset <= length - _PN_MAX_LENGTH - SAMPLE_LENGTH:
                try:
                    result = self._unprotect(view[offset : offset + length], pn_offset, largest_pn)
                except CryptoError:
                    pass
                else:
                    largest_pn = max(largest_pn, result[2])
            results.append(result)
        return results
