# Readers and writers for QUIC's wire encodings: variable-length integers
# (RFC 9000 §16), fixed-size big-endian integers, raw and length-prefixed
# bytes.  Owns BufferReadError, raised whenever a read would run past the end
# of the data; callers map it to FRAME_ENCODING_ERROR (frames),
# TRANSPORT_PARAMETER_ERROR (transport parameters) or a dropped packet
# (headers).  Nothing here loops over bytes in Python: integers go through
# int.from_bytes / int.to_bytes.
#
# Two styles, for two kinds of caller:
#   - decode_varint(data, pos) -> (value, new_pos): a plain function for the
#     hot parsers (frames.py, packet.py) that keep their own position;
#   - Reader / Writer: a cursor object for everything else.
# A C accelerator would pay off only if a profile shows varint decoding on
# the receive path; the API here (and frames.py's parse loop) would stay.
from __future__ import annotations

from typing import Union

from .errors import UsageError

Buffer = Union[bytes, bytearray, memoryview]

VARINT_MAX = (1 << 62) - 1  # RFC 9000 §16: 62 usable bits

_from_bytes = int.from_bytes
_MASK30 = 0x3FFFFFFF
_MASK62 = 0x3FFFFFFFFFFFFFFF


class BufferReadError(ValueError):
    """A read ran past the end of the data (a truncated or malformed encoding)."""


def varint_size(value: int) -> int:
    """The length of the minimal encoding of `value` (RFC 9000 §16, Table 4)."""
    if value < 0x40:
        if value < 0:
            raise UsageError(f"varint out of range: {value}")
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    if value <= VARINT_MAX:
        return 8
    raise UsageError(f"varint out of range: {value}")


def encode_varint(value: int) -> bytes:
    """The minimal encoding of `value` (RFC 9000 §16)."""
    if value < 0x40:
        if value < 0:
            raise UsageError(f"varint out of range: {value}")
        return bytes((value,))
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    if value <= VARINT_MAX:
        return (value | 0xC000000000000000).to_bytes(8, "big")
    raise UsageError(f"varint out of range: {value}")


def encode_varint_sized(value: int, size: int) -> bytes:
    """`value` in exactly `size` bytes (1, 2, 4 or 8): for fields patched later."""
    if size == 1:
        limit, prefix = 0x40, 0
    elif size == 2:
        limit, prefix = 0x4000, 0x4000
    elif size == 4:
        limit, prefix = 0x40000000, 0x80000000
    elif size == 8:
        limit, prefix = VARINT_MAX + 1, 0xC000000000000000
    else:
        raise UsageError(f"varint size must be 1, 2, 4 or 8, not {size}")
    if not 0 <= value < limit:
        raise UsageError(f"{value} does not fit a {size}-byte varint")
    return (value | prefix).to_bytes(size, "big")


def decode_varint(data: Buffer, pos: int) -> tuple[int, int]:
    """(value, position after it) for the varint at `pos`.

    Non-minimal encodings are accepted (RFC 9000 §16 allows them except where
    a field says otherwise, e.g. frame types, which frames.py checks).
    """
    try:
        first = data[pos]
        kind = first >> 6
        if kind == 0:
            return first, pos + 1
        if kind == 1:
            return ((first & 0x3F) << 8) | data[pos + 1], pos + 2
    except IndexError:
        raise BufferReadError("truncated varint") from None
    end = pos + (4 if kind == 2 else 8)
    if end > len(data):
        raise BufferReadError("truncated varint")
    return _from_bytes(data[pos:end], "big") & (_MASK30 if kind == 2 else _MASK62), end


class Reader:
    """A read cursor over `data[pos:end]`; every read checks the end."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: Buffer, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        if not 0 <= pos <= self.end <= len(data):
            raise UsageError("reader bounds outside the data")

    def eof(self) -> bool:
        return self.pos >= self.end

    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int) -> int:
        start = self.pos
        stop = start + n
        if n < 0 or stop > self.end:
            raise BufferReadError(f"need {n} bytes, {self.end - start} left")
        self.pos = stop
        return start

    def pull_varint(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise BufferReadError("truncated varint")
        kind = self.data[pos] >> 6
        size = 1 << kind
        if pos + size > self.end:
            raise BufferReadError("truncated varint")
        if kind == 0:
            self.pos = pos + 1
            return self.data[pos]
        value, self.pos = decode_varint(self.data, pos)
        return value

    def pull_uint8(self) -> int:
        return self.data[self._take(1)]

    def pull_uint16(self) -> int:
        start = self._take(2)
        return _from_bytes(self.data[start : start + 2], "big")

    def pull_uint32(self) -> int:
        start = self._take(4)
        return _from_bytes(self.data[start : start + 4], "big")

    def pull_uint64(self) -> int:
        start = self._take(8)
        return _from_bytes(self.data[start : start + 8], "big")

    def pull_bytes(self, n: int) -> bytes:
        start = self._take(n)
        return bytes(self.data[start : start + n])

    def pull_rest(self) -> bytes:
        """Everything up to the end."""
        return self.pull_bytes(self.end - self.pos)

    def pull_uint8_bytes(self) -> bytes:
        """Bytes with a one-byte length prefix (connection IDs)."""
        return self.pull_bytes(self.pull_uint8())

    def pull_varint_bytes(self) -> bytes:
        """Bytes with a varint length prefix."""
        return self.pull_bytes(self.pull_varint())

    def skip(self, n: int) -> None:
        self._take(n)

    def sub_reader(self, n: int) -> "Reader":
        """A reader over the next `n` bytes; this one moves past them."""
        start = self._take(n)
        return Reader(self.data, start, start + n)


class Writer:
    """An append-only writer over a bytearray; `data` is the bytes so far."""

    __slots__ = ("data",)

    def __init__(self, data: bytearray | None = None) -> None:
        self.data = bytearray() if data is None else data

    def __len__(self) -> int:
        return len(self.data)

    def getvalue(self) -> bytes:
        return bytes(self.data)

    def push_varint(self, value: int) -> None:
        if 0 <= value < 0x40:
            self.data.append(value)
        else:
            self.data += encode_varint(value)

    def push_varint_sized(self, value: int, size: int) -> None:
        self.data += encode_varint_sized(value, size)

    def push_uint8(self, value: int) -> None:
        self.data.append(value)

    def push_uint16(self, value: int) -> None:
        self.data += value.to_bytes(2, "big")

    def push_uint32(self, value: int) -> None:
        self.data += value.to_bytes(4, "big")

    def push_uint64(self, value: int) -> None:
        self.data += value.to_bytes(8, "big")

    def push_bytes(self, value: Buffer) -> None:
        self.data += value

    def push_uint8_bytes(self, value: Buffer) -> None:
        if len(value) > 0xFF:
            raise UsageError("more than 255 bytes behind a one-byte length")
        self.data.append(len(value))
        self.data += value

    def push_varint_bytes(self, value: Buffer) -> None:
        self.push_varint(len(value))
        self.data += value

    def reserve_varint(self, size: int = 2) -> int:
        """Write a `size`-byte zero varint to patch later; returns its offset."""
        offset = len(self.data)
        self.data += encode_varint_sized(0, size)
        return offset

    def patch_varint(self, offset: int, value: int, size: int = 2) -> None:
        self.data[offset : offset + size] = encode_varint_sized(value, size)
