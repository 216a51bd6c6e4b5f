# HTTP/3 wire format (RFC 9114 §6.2, §7): stream and frame type numbers,
# SETTINGS identifiers, reserved "grease" numbers, frame and SETTINGS
# encoding, and FrameParser, the incremental per-stream frame reader.
#
# FrameParser is fed stream bytes as they arrive and hands back one item at a
# time, so a caller can stop pulling (a HEADERS frame blocked on QPACK) and
# resume later.  DATA payload is handed out as it arrives, never waiting for
# the whole frame; the other frames it knows are buffered whole up to a cap;
# frames of unknown (and reserved) types are skipped without being buffered
# (RFC 9114 §9: "implementations MUST ignore unknown frame types").  It
# counts the bytes that were not DATA payload (`overhead`) so the caller can
# give back their flow-control credit.
from __future__ import annotations

from typing import Callable, Optional, Union

from ..buffer import BufferReadError, decode_varint, encode_varint
from .errors import H3Error, H3ErrorCode

# -- frame types (RFC 9114 §7.2, Table 3) ------------------------------------------------
DATA = 0x0
HEADERS = 0x1
CANCEL_PUSH = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
GOAWAY = 0x7
MAX_PUSH_ID = 0xD
# HTTP/2 frame types with no HTTP/3 meaning: receiving one is H3_FRAME_UNEXPECTED (§7.2.8).
HTTP2_ONLY_FRAMES = frozenset((0x2, 0x6, 0x8, 0x9))
# WebTransport over HTTP/3 (draft-ietf-webtrans-http3): a bidirectional stream
# that starts with this signal value, then the session ID, then raw data.
WEBTRANSPORT_STREAM = 0x41

KNOWN_FRAMES = frozenset((DATA, HEADERS, CANCEL_PUSH, SETTINGS, PUSH_PROMISE, GOAWAY, MAX_PUSH_ID)) | HTTP2_ONLY_FRAMES

# -- unidirectional stream types (RFC 9114 §6.2; RFC 9204 §4.2) --------------------------
STREAM_CONTROL = 0x00
STREAM_PUSH = 0x01
STREAM_QPACK_ENCODER = 0x02
STREAM_QPACK_DECODER = 0x03
STREAM_WEBTRANSPORT = 0x54

# -- SETTINGS identifiers (RFC 9114 §7.2.4.1, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1) --
SETTING_QPACK_MAX_TABLE_CAPACITY = 0x1
SETTING_MAX_FIELD_SECTION_SIZE = 0x6
SETTING_QPACK_BLOCKED_STREAMS = 0x7
SETTING_ENABLE_CONNECT_PROTOCOL = 0x8
SETTING_H3_DATAGRAM = 0x33
SETTING_ENABLE_WEBTRANSPORT = 0x2B603742
SETTING_WEBTRANSPORT_MAX_SESSIONS = 0xC671706A
# HTTP/2 settings with no HTTP/3 meaning: receiving one is H3_SETTINGS_ERROR (§7.2.4.1).
HTTP2_ONLY_SETTINGS = frozenset((0x0, 0x2, 0x3, 0x4, 0x5))
# Short names for the spec's table (QPACK_MAX_TABLE_CAPACITY etc.).
QPACK_MAX_TABLE_CAPACITY = SETTING_QPACK_MAX_TABLE_CAPACITY
MAX_FIELD_SECTION_SIZE = SETTING_MAX_FIELD_SECTION_SIZE
QPACK_BLOCKED_STREAMS = SETTING_QPACK_BLOCKED_STREAMS
ENABLE_CONNECT_PROTOCOL = SETTING_ENABLE_CONNECT_PROTOCOL
H3_DATAGRAM = SETTING_H3_DATAGRAM
ENABLE_WEBTRANSPORT = SETTING_ENABLE_WEBTRANSPORT
WEBTRANSPORT_MAX_SESSIONS = SETTING_WEBTRANSPORT_MAX_SESSIONS

MAX_VARINT = (1 << 62) - 1


def grease_id(n: int) -> int:
    """The n-th reserved identifier 0x1f * N + 0x21 (RFC 9114 §7.2.4.1, §7.2.8,
    §6.2.3), used for settings, frame types and stream types that a peer must
    ignore; N comes from the caller (no randomness in the core)."""
    value = 0x1F * n + 0x21
    if not 0 <= value <= MAX_VARINT:
        raise ValueError("grease index out of range")
    return value


def is_grease(value: int) -> bool:
    return value >= 0x21 and (value - 0x21) % 0x1F == 0


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    return encode_varint(frame_type) + encode_varint(len(payload)) + payload


def encode_frame_header(frame_type: int, length: int) -> bytes:
    return encode_varint(frame_type) + encode_varint(length)


def encode_settings(settings: dict[int, int]) -> bytes:
    """The SETTINGS frame payload (identifier, value pairs)."""
    return b"".join(encode_varint(k) + encode_varint(v) for k, v in settings.items())


def decode_settings(payload: bytes) -> dict[int, int]:
    """RFC 9114 §7.2.4: a truncated pair is H3_FRAME_ERROR; a repeated
    identifier or an HTTP/2-only one is H3_SETTINGS_ERROR."""
    settings: dict[int, int] = {}
    pos = 0
    try:
        while pos < len(payload):
            key, pos = decode_varint(payload, pos)
            value, pos = decode_varint(payload, pos)
            if key in HTTP2_ONLY_SETTINGS:
                raise H3Error(H3ErrorCode.H3_SETTINGS_ERROR, f"HTTP/2 setting 0x{key:x} in SETTINGS")
            if key in settings:
                raise H3Error(H3ErrorCode.H3_SETTINGS_ERROR, f"setting 0x{key:x} repeated")
            settings[key] = value
    except BufferReadError:
        raise H3Error(H3ErrorCode.H3_FRAME_ERROR, "SETTINGS truncated") from None
    return settings


def decode_single_varint(payload: bytes, what: str) -> int:
    """GOAWAY, MAX_PUSH_ID and CANCEL_PUSH carry exactly one varint (§7.2.3, §7.2.6, §7.2.7)."""
    try:
        value, pos = decode_varint(payload, 0)
    except BufferReadError:
        raise H3Error(H3ErrorCode.H3_FRAME_ERROR, f"{what} truncated") from None
    if pos != len(payload):
        raise H3Error(H3ErrorCode.H3_FRAME_ERROR, f"{what} has trailing bytes")
    return value


def parse_varint_prefix(data: Union[bytes, bytearray]) -> Optional[tuple[int, int]]:
    """(value, length) of the varint at the start of data, None if incomplete."""
    try:
        return decode_varint(data, 0)
    except BufferReadError:
        return None


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Every complete frame in data, unknown types included (for tests and tools)."""
    frames, pos = [], 0
    while pos < len(data):
        frame_type, pos = decode_varint(data, pos)
        length, pos = decode_varint(data, pos)
        if pos + length > len(data):
            raise BufferReadError("truncated frame")
        frames.append((frame_type, bytes(data[pos:pos + length])))
        pos += length
    return frames


# -- the incremental parser ---------------------------------------------------------------

# Items FrameParser.next() returns:
FRAME_START = "start"  # (FRAME_START, frame_type, length): a frame begins (unknown ones are then skipped)
DATA_CHUNK = "data"  # (DATA_CHUNK, bytes): a piece of DATA payload
FRAME = "frame"  # (FRAME, frame_type, payload): a complete buffered frame
SIGNAL = "signal"  # (SIGNAL, signal_type, value): a stream-start signal (WebTransport)
RAW = "raw"  # (RAW, bytes): stream data after a signal
END = "end"  # (END,): the stream ended cleanly after a whole frame

_HEADER, _DATA, _BUFFER, _SKIP, _RAW = range(5)


class FrameTooLarge(H3Error):
    """A buffered frame is longer than its cap (the caller decides the code)."""

    def __init__(self, frame_type: int, length: int, cap: int) -> None:
        super().__init__(H3ErrorCode.H3_EXCESSIVE_LOAD, f"frame 0x{frame_type:x} of {length} bytes exceeds {cap}")
        self.frame_type = frame_type
        self.length = length
        self.cap = cap


class FrameParser:
    """One stream's frames, incrementally.  `frame_cap(frame_type)` gives the
    largest payload buffered for a known non-DATA frame type (FrameTooLarge
    beyond it).  `signals` are types that, as the stream's first varint, are
    followed by one varint and then raw data (no frame structure)."""

    __slots__ = ("_buf", "_held", "_state", "_type", "_remaining", "_fin", "_ended", "_started", "overhead",
                 "frame_cap", "signals")

    def __init__(self, frame_cap: Callable[[int], int], signals: frozenset = frozenset()) -> None:
        self._buf = bytearray()
        # A bytes object pushed while _buf was empty, not copied yet: DATA
        # payload (or raw data) it holds is handed out as it is, the rest
        # joins _buf when a header or a buffered frame needs its bytes.
        self._held: Optional[bytes] = None
        self._state = _HEADER
        self._type = 0
        self._remaining = 0
        self._fin = False
        self._ended = False
        self._started = False
        self.overhead = 0  # bytes taken that were not DATA payload nor RAW data
        self.frame_cap = frame_cap
        self.signals = signals

    @property
    def buffered(self) -> int:
        held = self._held
        return len(self._buf) + (len(held) if held is not None else 0)

    @property
    def fin_received(self) -> bool:
        return self._fin

    @property
    def frame_type(self) -> Optional[int]:
        """The type of the frame in progress (None between frames)."""
        return self._type if self._state in (_DATA, _BUFFER, _SKIP) else None

    def push(self, data: bytes, fin: bool = False) -> None:
        if self._fin and data:
            raise H3Error(H3ErrorCode.H3_FRAME_ERROR, "data after the end of the stream")
        if data:
            if self._held is None and not self._buf and type(data) is bytes:
                self._held = data
            else:
                self._unhold()
                self._buf += data
        self._fin = self._fin or fin

    def _unhold(self) -> None:
        if self._held is not None:
            self._buf += self._held
            self._held = None

    def take_overhead(self) -> int:
        count, self.overhead = self.overhead, 0
        return count

    def next(self) -> Optional[tuple]:
        """The next item, or None until more bytes arrive.  Raises H3Error
        (H3_FRAME_ERROR) for a frame truncated by the end of the stream."""
        held = self._held
        if held is not None:  # _buf is empty
            state = self._state
            if state == _RAW or (state == _DATA and self._remaining):
                n = len(held) if state == _RAW else min(len(held), self._remaining)
                self._held = None
                if n < len(held):
                    self._buf += memoryview(held)[n:]
                    held = held[:n]
                if state == _DATA:
                    self._remaining -= n
                return (DATA_CHUNK if state == _DATA else RAW, held)
            self._unhold()
        while True:
            buf = self._buf
            state = self._state
            if state == _DATA or state == _RAW:
                if state == _DATA and self._remaining == 0:
                    self._state = _HEADER
                    continue
                n = len(buf) if state == _RAW else min(len(buf), self._remaining)
                if n:
                    chunk = bytes(buf[:n]) if n < len(buf) else bytes(buf)
                    del buf[:n]
                    self._remaining -= n
                    return (DATA_CHUNK if state == _DATA else RAW, chunk)
                return self._at_end(state == _RAW)
            if state == _SKIP:
                n = min(len(buf), self._remaining)
                del buf[:n]
                self._remaining -= n
                self.overhead += n
                if self._remaining:
                    return self._at_end(False)
                self._state = _HEADER
                continue
            if state == _BUFFER:
                need = self._remaining
                if len(buf) < need:
                    return self._at_end(False)
                payload = bytes(buf[:need])
                del buf[:need]
                self.overhead += need
                self._state = _HEADER
                return (FRAME, self._type, payload)
            # _HEADER: a type and a length, both varints
            if not buf:
                return self._at_end(True)
            try:
                frame_type, pos = decode_varint(buf, 0)
                if not self._started and frame_type in self.signals:
                    value, pos = decode_varint(buf, pos)
                    self._started = True
                    del buf[:pos]
                    self.overhead += pos
                    self._state = _RAW
                    return (SIGNAL, frame_type, value)
                length, pos = decode_varint(buf, pos)
            except BufferReadError:
                return self._at_end(False)
            self._started = True
            del buf[:pos]
            self.overhead += pos
            self._type = frame_type
            self._remaining = length
            if frame_type == DATA:
                self._state = _DATA
                return (FRAME_START, frame_type, length)
            if frame_type in KNOWN_FRAMES:
                cap = self.frame_cap(frame_type)
                if length > cap:
                    raise FrameTooLarge(frame_type, length, cap)
                self._state = _BUFFER
            else:
                self._state = _SKIP  # unknown or reserved: ignored, not buffered (§9)
            return (FRAME_START, frame_type, length)

    def raw(self) -> None:
        """From now on the stream carries no frames (a WebTransport stream we opened)."""
        self._started = True
        self._state = _RAW

    def _at_end(self, clean: bool) -> Optional[tuple]:
        if not self._fin or self._ended:
            return None
        if not clean:
            # §7.1: a frame cut short by the end of the stream is H3_FRAME_ERROR.
            raise H3Error(H3ErrorCode.H3_FRAME_ERROR, "frame truncated by the end of the stream")
        self._ended = True
        return (END,)


__all__ = [name for name in dir() if name.isupper() or name in (
    "grease_id", "is_grease", "encode_frame", "encode_frame_header", "encode_settings", "decode_settings",
    "decode_single_varint", "parse_varint_prefix", "parse_frames", "FrameParser", "FrameTooLarge",
)]
