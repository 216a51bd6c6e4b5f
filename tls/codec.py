# Owns the TLS presentation language (RFC 8446 §3) as bytes: a Reader that
# decodes fixed-width integers and length-prefixed vectors with their bounds,
# and a Writer that encodes them.  Every truncation, overrun, bound violation
# or leftover byte in received data is AlertError(decode_error) (RFC 8446 §6.2:
# "some field was out of the specified range or the length of the message was
# incorrect").  Misuse when encoding our own data is UsageError.
#
# No state beyond a read position, no crypto, no per-byte Python loops.
from __future__ import annotations

import struct
from collections.abc import Sequence
from contextlib import AbstractContextManager

from .enums import AlertDescription
from .errors import AlertError, UsageError

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U8_U16 = struct.Struct(">BH")
_U16_U16 = struct.Struct(">HH")


def decode_error(reason: str) -> AlertError:
    return AlertError(AlertDescription.decode_error, reason)


def illegal_parameter(reason: str) -> AlertError:
    return AlertError(AlertDescription.illegal_parameter, reason)


def unpack_u16_list(data: bytes | memoryview, what: str = "u16 list") -> list[int]:
    """Decode a run of big-endian u16 values (one struct call, no byte loop)."""
    if len(data) % 2:
        raise decode_error(f"{what}: odd length {len(data)}")
    return list(struct.unpack(f">{len(data) // 2}H", data))


class Reader:
    """Sequential decoder over received bytes.

    Bounds on vectors are the RFC's <floor..ceiling>, in bytes; `what` names
    the field in the alert reason.

    The integer and vector readers below inline the bounds check instead of
    sharing a helper: every handshake runs them ~100 times, and a Python call
    costs about as much as the read itself.
    """

    __slots__ = ("_buf", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview, _start: int = 0, _end: int | None = None) -> None:
        # Kept as bytes (other buffers are copied once: handshake messages are
        # small) so that every field is one slice, not a view plus .tobytes().
        buf = data if type(data) is bytes else bytes(data)
        self._buf = buf
        self._pos = _start
        self._end = len(buf) if _end is None else _end

    # -- position -------------------------------------------------------
    @property
    def position(self) -> int:
        """Offset of the next byte inside the buffer the outermost Reader was made on."""
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def expect_end(self, what: str = "message") -> None:
        if self._pos != self._end:
            raise decode_error(f"{what}: {self._end - self._pos} trailing bytes")

    def _truncated(self, n: int, what: str) -> AlertError:
        return decode_error(f"{what}: truncated (need {n} bytes, have {self._end - self._pos})")

    def _take(self, n: int, what: str) -> int:
        pos = self._pos
        if n < 0 or pos + n > self._end:
            raise self._truncated(n, what)
        self._pos = pos + n
        return pos

    # -- integers -------------------------------------------------------
    def u8(self, what: str = "u8") -> int:
        pos = self._pos
        if pos >= self._end:
            raise self._truncated(1, what)
        self._pos = pos + 1
        return self._buf[pos]

    def u16(self, what: str = "u16") -> int:
        pos = self._pos
        if pos + 2 > self._end:
            raise self._truncated(2, what)
        self._pos = pos + 2
        return _U16.unpack_from(self._buf, pos)[0]

    def u24(self, what: str = "u24") -> int:
        hi, lo = _U8_U16.unpack_from(self._buf, self._take(3, what))
        return (hi << 16) | lo

    def u32(self, what: str = "u32") -> int:
        return _U32.unpack_from(self._buf, self._take(4, what))[0]

    # -- opaque ---------------------------------------------------------
    def raw(self, n: int, what: str = "opaque") -> bytes:
        pos = self._pos
        end = pos + n
        if n < 0 or end > self._end:
            raise self._truncated(n, what)
        self._pos = end
        return self._buf[pos:end]

    def rest(self) -> bytes:
        """All remaining bytes (for fields that run to the end of a block)."""
        return self.raw(self.remaining())

    def _length(self, width: int, minimum: int, maximum: int, what: str) -> int:
        pos = self._pos
        if pos + width > self._end:
            raise self._truncated(width, what)
        if width == 2:
            n = _U16.unpack_from(self._buf, pos)[0]
        elif width == 1:
            n = self._buf[pos]
        else:
            hi, lo = _U8_U16.unpack_from(self._buf, pos)
            n = (hi << 16) | lo
        pos += width
        self._pos = pos
        if n < minimum or n > maximum:
            raise decode_error(f"{what}: length {n} outside <{minimum}..{maximum}>")
        if n > self._end - pos:
            raise decode_error(f"{what}: length {n} overruns the {self._end - pos} bytes left")
        return n

    def _vec(self, width: int, minimum: int, maximum: int, what: str) -> bytes:
        pos = self._pos + width
        n = self._length(width, minimum, maximum, what)
        self._pos = pos + n
        return self._buf[pos : pos + n]

    def vec8(self, minimum: int = 0, maximum: int = 0xFF, what: str = "opaque<..2^8-1>") -> bytes:
        return self._vec(1, minimum, maximum, what)

    def vec16(self, minimum: int = 0, maximum: int = 0xFFFF, what: str = "opaque<..2^16-1>") -> bytes:
        return self._vec(2, minimum, maximum, what)

    def vec24(self, minimum: int = 0, maximum: int = 0xFFFFFF, what: str = "opaque<..2^24-1>") -> bytes:
        return self._vec(3, minimum, maximum, what)

    def _sub(self, width: int, minimum: int, maximum: int, what: str) -> Reader:
        n = self._length(width, minimum, maximum, what)
        start = self._pos
        self._pos = start + n
        sub = Reader.__new__(Reader)  # same buffer, already bytes
        sub._buf = self._buf
        sub._pos = start
        sub._end = start + n
        return sub

    def sub8(self, minimum: int = 0, maximum: int = 0xFF, what: str = "block<..2^8-1>") -> Reader:
        return self._sub(1, minimum, maximum, what)

    def sub16(self, minimum: int = 0, maximum: int = 0xFFFF, what: str = "block<..2^16-1>") -> Reader:
        return self._sub(2, minimum, maximum, what)

    def sub24(self, minimum: int = 0, maximum: int = 0xFFFFFF, what: str = "block<..2^24-1>") -> Reader:
        return self._sub(3, minimum, maximum, what)

    def typed_items16(self) -> list[tuple[int, bytes]] | None:
        """The rest of the block as `uint16 type; opaque data<0..2^16-1>` pairs
        (extension blocks), read in one loop.  Returns None, consuming nothing,
        if they do not fit exactly: the caller then reads them one by one to
        raise the precise error."""
        buf, pos, end = self._buf, self._pos, self._end
        unpack = _U16_U16.unpack_from
        out = []
        while pos < end:
            if pos + 4 > end:
                return None
            ext_type, n = unpack(buf, pos)
            pos += 4
            if pos + n > end:
                return None
            out.append((ext_type, buf[pos : pos + n]))
            pos += n
        self._pos = pos
        return out

    # -- lists of u16 (cipher suites, groups, signature schemes, versions) --
    def u16_list8(self, minimum: int, maximum: int, what: str) -> list[int]:
        """uint16 values<minimum..maximum> with a 1-byte length; odd length is decode_error."""
        return unpack_u16_list(self.vec8(minimum, maximum, what), what)

    def u16_list16(self, minimum: int, maximum: int, what: str) -> list[int]:
        """uint16 values<minimum..maximum> with a 2-byte length; odd length is decode_error."""
        return unpack_u16_list(self.vec16(minimum, maximum, what), what)


class Writer:
    """Encoder for data we send; out-of-range values are caller bugs (UsageError)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def _int(self, value: int, width: int) -> None:
        try:
            self._buf += value.to_bytes(width, "big")  # negative or too large: OverflowError
        except OverflowError:
            raise UsageError(f"value {value!r} does not fit in {width} bytes") from None

    def u8(self, value: int) -> None:
        self._int(value, 1)

    def u16(self, value: int) -> None:
        self._int(value, 2)

    def u24(self, value: int) -> None:
        self._int(value, 3)

    def u32(self, value: int) -> None:
        self._int(value, 4)

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def _vec(self, data: bytes | bytearray | memoryview, width: int) -> None:
        self._int(len(data), width)
        self._buf += data

    def vec8(self, data: bytes | bytearray | memoryview) -> None:
        self._vec(data, 1)

    def vec16(self, data: bytes | bytearray | memoryview) -> None:
        self._vec(data, 2)

    def vec24(self, data: bytes | bytearray | memoryview) -> None:
        self._vec(data, 3)

    def u16_list8(self, values: Sequence[int]) -> None:
        self.vec8(pack_u16_list(values))

    def u16_list16(self, values: Sequence[int]) -> None:
        self.vec16(pack_u16_list(values))

    def block8(self) -> AbstractContextManager[Writer]:
        """`with w.block8(): ...` writes a 1-byte length for what is written inside."""
        return _Block(self, 1)

    def block16(self) -> AbstractContextManager[Writer]:
        return _Block(self, 2)

    def block24(self) -> AbstractContextManager[Writer]:
        return _Block(self, 3)


class _Block:
    """The length-prefixed block of Writer.blockN (a plain class: a
    @contextmanager generator costs several times more per block)."""

    __slots__ = ("_w", "_width", "_start")

    def __init__(self, w: Writer, width: int) -> None:
        self._w = w
        self._width = width

    def __enter__(self) -> Writer:
        buf = self._w._buf
        self._start = len(buf)
        buf += bytes(self._width)
        return self._w

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            return
        buf, width, start = self._w._buf, self._width, self._start
        length = len(buf) - start - width
        if length >= 1 << (8 * width):
            raise UsageError(f"block of {length} bytes does not fit a {width}-byte length")
        buf[start : start + width] = length.to_bytes(width, "big")


def pack_u16_list(values: Sequence[int]) -> bytes:
    try:
        return struct.pack(f">{len(values)}H", *values)
    except struct.error as exc:
        raise UsageError(f"u16 list: {exc}") from None
