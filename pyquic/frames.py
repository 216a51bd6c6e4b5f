# QUIC frames: every RFC 9000 §19 frame type plus DATAGRAM (RFC 9221) -- one
# small immutable NamedTuple per frame, its encoder, and the payload parser
# that applies the legality tables of frame_types.py (re-exported here).
#
# The parser raises only TransportError: FRAME_ENCODING_ERROR for anything
# malformed or truncated (and unknown frame types), PROTOCOL_VIOLATION for a
# frame in the wrong packet type or a non-minimal frame type.  Field checks
# of §19 that need no connection state are enforced here; the rest (stream
# direction, flow control, CID limits) belongs to the connection.
#
# Speed: the receive path sees STREAM, ACK, CRYPTO and PADDING most.  A
# payload made only of common frames is parsed in C (pyquic/_frames.c);
# the pure-Python twin, parse_frames_py, takes the rest and decides every
# error.  The twin decodes STREAM and PADDING inline, builds frames with
# tuple.__new__ (no Python __init__), and skips a PADDING run in one C-level
# step.  Frames compare equal only to frames of the same class.
from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple, Optional, Union

from .buffer import BufferReadError, decode_varint, encode_varint, varint_size as _varint_size
from .errors import TransportError, UsageError
from .frame_types import (  # noqa: F401  (re-exported: frames.X is the one import callers need)
    _ACK_ELICITING,
    _ALLOWED,
    _KNOWN,
    FLOW_CONTROLLED_FRAME_TYPES,
    FRAME_CARRYING_PACKETS,
    FRAME_PACKETS,
    KNOWN_FRAME_TYPES,
    NON_ACK_ELICITING_FRAME_TYPES,
    NOT_IN_FLIGHT_FRAME_TYPES,
    PROBING_FRAME_TYPES,
    SERVER_ONLY_FRAME_TYPES,
    STREAM_FIN_BIT,
    STREAM_LEN_BIT,
    STREAM_OFF_BIT,
    FrameType,
    check_frame_allowed,
    counts_in_flight,
    is_ack_eliciting,
    is_probing,
)
from .packet import PacketType

MAX_ACK_RANGES = 1024  # ACK Range Count accepted from a peer; more -> FRAME_ENCODING_ERROR
MAX_OFFSET = (1 << 62) - 1  # RFC 9000 §19.6 / §19.8: largest offset + length
MAX_STREAMS_LIMIT = 1 << 60  # RFC 9000 §19.11 / §19.14
MAX_CID_LENGTH = 20
STATELESS_RESET_TOKEN_LENGTH = 16


# --- the frames ------------------------------------------------------------------
# Each class has TYPE (its base frame type) and encode(out) appending its wire
# form to a bytearray.  Frames that have two wire types keep the choice in a
# field (Ack.ecn, MaxStreams.bidi, ConnectionClose.application); STREAM and
# DATAGRAM choose whether to carry a length when encoded (last=True omits it).

_v = encode_varint


class Padding(NamedTuple):
    length: int = 1  # a run of PADDING bytes counts as one frame
    TYPE = FrameType.PADDING

    def encode(self, out: bytearray) -> None:
        out += bytes(self.length)


class Ping(NamedTuple):
    TYPE = FrameType.PING

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.PING)


class Ack(NamedTuple):
    """ACK (§19.3).  `ranges`: acknowledged packet numbers as half-open
    (start, stop) pairs, highest first, separated by at least one missing
    packet.  `delay` is the raw field (scaled by the sender's
    ack_delay_exponent).  `ecn` is (ECT0, ECT1, ECN-CE) for type 0x03."""

    ranges: tuple[tuple[int, int], ...]
    delay: int = 0
    ecn: Optional[tuple[int, int, int]] = None
    TYPE = FrameType.ACK

    @property
    def largest_acknowledged(self) -> int:
        return self.ranges[0][1] - 1

    def encode(self, out: bytearray) -> None:
        ranges = self.ranges
        if not ranges:
            raise UsageError("an ACK frame acknowledges at least one packet")
        start, stop = ranges[0]
        if not 0 <= start < stop:
            raise UsageError(f"bad ACK range {ranges[0]}")
        out.append(FrameType.ACK_ECN if self.ecn is not None else FrameType.ACK)
        out += _v(stop - 1) + _v(self.delay) + _v(len(ranges) - 1) + _v(stop - 1 - start)
        previous_start = start
        for start, stop in ranges[1:]:
            gap = previous_start - stop - 1
            if gap < 0 or not 0 <= start < stop:
                raise UsageError("ACK ranges must be descending, disjoint and non-adjacent")
            out += _v(gap) + _v(stop - 1 - start)
            previous_start = start
        if self.ecn is not None:
            ect0, ect1, ce = self.ecn
            out += _v(ect0) + _v(ect1) + _v(ce)


class ResetStream(NamedTuple):
    stream_id: int
    error_code: int
    final_size: int
    TYPE = FrameType.RESET_STREAM

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.RESET_STREAM)
        out += _v(self.stream_id) + _v(self.error_code) + _v(self.final_size)


class StopSending(NamedTuple):
    stream_id: int
    error_code: int
    TYPE = FrameType.STOP_SENDING

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.STOP_SENDING)
        out += _v(self.stream_id) + _v(self.error_code)


class Crypto(NamedTuple):
    offset: int
    data: bytes
    TYPE = FrameType.CRYPTO

    def encode(self, out: bytearray) -> None:
        out += crypto_frame_header(self.offset, len(self.data))
        out += self.data


class NewToken(NamedTuple):
    token: bytes
    TYPE = FrameType.NEW_TOKEN

    def encode(self, out: bytearray) -> None:
        if not self.token:
            raise UsageError("NEW_TOKEN needs a token")
        out.append(FrameType.NEW_TOKEN)
        out += _v(len(self.token))
        out += self.token


class Stream(NamedTuple):
    stream_id: int
    offset: int
    data: bytes
    fin: bool = False
    TYPE = FrameType.STREAM

    def encode(self, out: bytearray, last: bool = False) -> None:
        """`last=True` omits the length: the data then runs to the end of the packet."""
        out += stream_frame_header(self.stream_id, self.offset, len(self.data), self.fin, with_length=not last)
        out += self.data


class MaxData(NamedTuple):
    maximum: int
    TYPE = FrameType.MAX_DATA

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.MAX_DATA)
        out += _v(self.maximum)


class MaxStreamData(NamedTuple):
    stream_id: int
    maximum: int
    TYPE = FrameType.MAX_STREAM_DATA

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.MAX_STREAM_DATA)
        out += _v(self.stream_id) + _v(self.maximum)


class MaxStreams(NamedTuple):
    bidi: bool
    maximum: int
    TYPE = FrameType.MAX_STREAMS_BIDI

    def encode(self, out: bytearray) -> None:
        if self.maximum > MAX_STREAMS_LIMIT:
            raise UsageError("MAX_STREAMS above 2^60")
        out.append(FrameType.MAX_STREAMS_BIDI if self.bidi else FrameType.MAX_STREAMS_UNI)
        out += _v(self.maximum)


class DataBlocked(NamedTuple):
    limit: int
    TYPE = FrameType.DATA_BLOCKED

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.DATA_BLOCKED)
        out += _v(self.limit)


class StreamDataBlocked(NamedTuple):
    stream_id: int
    limit: int
    TYPE = FrameType.STREAM_DATA_BLOCKED

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.STREAM_DATA_BLOCKED)
        out += _v(self.stream_id) + _v(self.limit)


class StreamsBlocked(NamedTuple):
    bidi: bool
    limit: int
    TYPE = FrameType.STREAMS_BLOCKED_BIDI

    def encode(self, out: bytearray) -> None:
        if self.limit > MAX_STREAMS_LIMIT:
            raise UsageError("STREAMS_BLOCKED above 2^60")
        out.append(FrameType.STREAMS_BLOCKED_BIDI if self.bidi else FrameType.STREAMS_BLOCKED_UNI)
        out += _v(self.limit)


class NewConnectionId(NamedTuple):
    sequence_number: int
    retire_prior_to: int
    connection_id: bytes
    stateless_reset_token: bytes
    TYPE = FrameType.NEW_CONNECTION_ID

    def encode(self, out: bytearray) -> None:
        if not 1 <= len(self.connection_id) <= MAX_CID_LENGTH:
            raise UsageError("NEW_CONNECTION_ID carries a 1..20 byte connection ID")
        if len(self.stateless_reset_token) != STATELESS_RESET_TOKEN_LENGTH:
            raise UsageError("stateless reset tokens are 16 bytes")
        if self.retire_prior_to > self.sequence_number:
            raise UsageError("retire_prior_to above the sequence number")
        out.append(FrameType.NEW_CONNECTION_ID)
        out += _v(self.sequence_number) + _v(self.retire_prior_to)
        out.append(len(self.connection_id))
        out += self.connection_id
        out += self.stateless_reset_token


class RetireConnectionId(NamedTuple):
    sequence_number: int
    TYPE = FrameType.RETIRE_CONNECTION_ID

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.RETIRE_CONNECTION_ID)
        out += _v(self.sequence_number)


class PathChallenge(NamedTuple):
    data: bytes  # 8 bytes
    TYPE = FrameType.PATH_CHALLENGE

    def encode(self, out: bytearray) -> None:
        if len(self.data) != 8:
            raise UsageError("PATH_CHALLENGE data is 8 bytes")
        out.append(FrameType.PATH_CHALLENGE)
        out += self.data


class PathResponse(NamedTuple):
    data: bytes  # 8 bytes
    TYPE = FrameType.PATH_RESPONSE

    def encode(self, out: bytearray) -> None:
        if len(self.data) != 8:
            raise UsageError("PATH_RESPONSE data is 8 bytes")
        out.append(FrameType.PATH_RESPONSE)
        out += self.data


class ConnectionClose(NamedTuple):
    """CONNECTION_CLOSE: 0x1c (transport, with the offending frame type) or
    0x1d (`application=True`, no frame type).  The reason phrase is decoded
    as UTF-8 with replacement (§19.19: SHOULD be UTF-8)."""

    error_code: int
    frame_type: int = 0
    reason: str = ""
    application: bool = False
    TYPE = FrameType.CONNECTION_CLOSE

    def encode(self, out: bytearray) -> None:
        reason = self.reason.encode("utf-8")
        if self.application:
            out.append(FrameType.CONNECTION_CLOSE_APP)
            out += _v(self.error_code)
        else:
            out.append(FrameType.CONNECTION_CLOSE)
            out += _v(self.error_code) + _v(self.frame_type)
        out += _v(len(reason))
        out += reason


class HandshakeDone(NamedTuple):
    TYPE = FrameType.HANDSHAKE_DONE

    def encode(self, out: bytearray) -> None:
        out.append(FrameType.HANDSHAKE_DONE)


class Datagram(NamedTuple):
    data: bytes
    with_length: bool = True  # as received: type 0x31 (True) or 0x30
    TYPE = FrameType.DATAGRAM

    @property
    def size(self) -> int:
        """Bytes on the wire, type and length included (what RFC 9221's
        max_datagram_frame_size limits)."""
        n = len(self.data)
        return 1 + n + (_varint_size(n) if self.with_length else 0)

    def encode(self, out: bytearray, last: bool = False) -> None:
        """`last=True` sends type 0x30 (no length; runs to the end of the packet)."""
        if last:
            out.append(FrameType.DATAGRAM)
        else:
            out.append(FrameType.DATAGRAM_LEN)
            out += _v(len(self.data))
        out += self.data


Frame = Union[
    Padding, Ping, Ack, ResetStream, StopSending, Crypto, NewToken, Stream, MaxData, MaxStreamData,
    MaxStreams, DataBlocked, StreamDataBlocked, StreamsBlocked, NewConnectionId, RetireConnectionId,
    PathChallenge, PathResponse, ConnectionClose, HandshakeDone, Datagram,
]
FRAME_CLASSES: tuple[type, ...] = Frame.__args__  # type: ignore[attr-defined]


def _frame_eq(self: tuple, other: object) -> bool:
    return type(self) is type(other) and tuple.__eq__(self, other)  # type: ignore[arg-type]


def _frame_ne(self: tuple, other: object) -> bool:
    return not _frame_eq(self, other)


def _frame_hash(self: tuple) -> int:
    return hash((type(self).__name__, tuple.__hash__(self)))


# Plain tuples would make MaxData(5) == DataBlocked(5) and Ping() == HandshakeDone().
for _cls in FRAME_CLASSES:
    _cls.__eq__ = _frame_eq  # type: ignore[method-assign]
    _cls.__ne__ = _frame_ne  # type: ignore[method-assign]
    _cls.__hash__ = _frame_hash  # type: ignore[method-assign]


def encode_frame(frame: Frame) -> bytes:
    out = bytearray()
    frame.encode(out)
    return bytes(out)


def stream_frame_header(stream_id: int, offset: int, length: int, fin: bool, *, with_length: bool = True) -> bytes:
    """The STREAM frame up to its data, for builders that append data themselves."""
    if offset + length > MAX_OFFSET:
        raise UsageError("stream offset + length above 2^62 - 1")
    frame_type = FrameType.STREAM | (STREAM_FIN_BIT if fin else 0)
    parts = _v(stream_id)
    if offset:
        frame_type |= STREAM_OFF_BIT
        parts += _v(offset)
    if with_length:
        frame_type |= STREAM_LEN_BIT
        parts += _v(length)
    return bytes((frame_type,)) + parts


def stream_frame_size(stream_id: int, offset: int, length: int) -> int:
    """The encoded size of a STREAM frame with its length and `length` data
    bytes (the offset field only when not 0): what stream_frame_header + data make."""
    return 1 + _varint_size(stream_id) + (_varint_size(offset) if offset else 0) + _varint_size(length) + length


def crypto_frame_header(offset: int, length: int) -> bytes:
    """The CRYPTO frame up to its data."""
    if offset + length > MAX_OFFSET:
        raise UsageError("crypto offset + length above 2^62 - 1")
    return bytes((FrameType.CRYPTO,)) + _v(offset) + _v(length)


# --- parsing ---------------------------------------------------------------------

_tuple_new = tuple.__new__
_from_bytes = int.from_bytes
_VARINT_MASKS = {1: 0x3F, 2: 0x3FFF, 4: 0x3FFFFFFF, 8: 0x3FFFFFFFFFFFFFFF}
_PING = Ping()  # frames without fields are shared
_HANDSHAKE_DONE = HandshakeDone()
_ZEROS = bytes(1 << 16)  # compared against a PADDING run that ends the packet


class ParsedPayload(NamedTuple):
    frames: list
    ack_eliciting: bool  # RFC 9002 §2: some frame other than ACK, PADDING, CONNECTION_CLOSE
    in_flight: bool  # RFC 9002 §2: ack-eliciting or PADDING


def _fee(reason: str, frame_type: int) -> TransportError:
    return TransportError.FRAME_ENCODING_ERROR(reason, frame_type=frame_type)


def _bytes_at(data: bytes, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if end > len(data):
        raise BufferReadError("truncated")
    return data[pos:end], end


def _parse_stream(data: bytes, pos: int, t: int) -> tuple[Stream, int]:
    stream_id, pos = decode_varint(data, pos)
    offset = 0
    if t & STREAM_OFF_BIT:
        offset, pos = decode_varint(data, pos)
    if t & STREAM_LEN_BIT:
        length, pos = decode_varint(data, pos)
        end = pos + length
        if end > len(data):
            raise BufferReadError("truncated")
    else:
        end = len(data)
    if offset + end - pos > MAX_OFFSET:
        # RFC 9000 §19.8: FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR; we decide at parse time.
        raise _fee("stream data beyond offset 2^62 - 1", t)
    return _tuple_new(Stream, (stream_id, offset, data[pos:end], bool(t & STREAM_FIN_BIT))), end


def _parse_ack(data: bytes, pos: int, t: int, max_ranges: int) -> tuple[Ack, int]:
    largest, pos = decode_varint(data, pos)
    delay, pos = decode_varint(data, pos)
    count, pos = decode_varint(data, pos)
    first, pos = decode_varint(data, pos)
    if count >= max_ranges:
        raise _fee(f"ACK frame with {count + 1} ranges (at most {max_ranges})", t)
    start = largest - first
    if start < 0:
        # RFC 9000 §19.3.1: a negative packet number is a FRAME_ENCODING_ERROR.
        raise _fee("ACK range below packet number 0", t)
    ranges = [(start, largest + 1)]
    for _ in range(count):
        gap, pos = decode_varint(data, pos)
        length, pos = decode_varint(data, pos)
        stop = start - gap - 1  # largest in this range, plus one
        start = stop - 1 - length
        if start < 0:
            raise _fee("ACK range below packet number 0", t)  # §19.3.1
        ranges.append((start, stop))
    ecn = None
    if t == 0x03:
        ect0, pos = decode_varint(data, pos)
        ect1, pos = decode_varint(data, pos)
        ce, pos = decode_varint(data, pos)
        ecn = (ect0, ect1, ce)
    return _tuple_new(Ack, (tuple(ranges), delay, ecn)), pos


def _parse_crypto(data: bytes, pos: int, t: int) -> tuple[Crypto, int]:
    offset, pos = decode_varint(data, pos)
    length, pos = decode_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise BufferReadError("truncated")
    if offset + length > MAX_OFFSET:
        # RFC 9000 §19.6: FRAME_ENCODING_ERROR or CRYPTO_BUFFER_EXCEEDED.
        raise _fee("crypto data beyond offset 2^62 - 1", t)
    return _tuple_new(Crypto, (offset, data[pos:end])), end


def _parse_padding(data: bytes, pos: int) -> tuple[Padding, int]:
    # `pos` is just past the first PADDING byte; skip the whole run at C speed.
    start = pos - 1
    rest = len(data) - pos
    if rest <= len(_ZEROS) and data.endswith(_ZEROS[:rest]):
        pos = len(data)  # the common case: padding to the end of the packet
    else:
        pos = len(data) - len(data[pos:].lstrip(b"\x00"))
    return _tuple_new(Padding, (pos - start,)), pos


def _p_ping(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    return _PING, pos


def _p_reset_stream(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    stream_id, pos = decode_varint(data, pos)
    error_code, pos = decode_varint(data, pos)
    final_size, pos = decode_varint(data, pos)
    return _tuple_new(ResetStream, (stream_id, error_code, final_size)), pos


def _p_stop_sending(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    stream_id, pos = decode_varint(data, pos)
    error_code, pos = decode_varint(data, pos)
    return _tuple_new(StopSending, (stream_id, error_code)), pos


def _p_new_token(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    length, pos = decode_varint(data, pos)
    if length == 0:
        raise _fee("empty NEW_TOKEN token", t)  # RFC 9000 §19.7
    token, pos = _bytes_at(data, pos, length)
    return _tuple_new(NewToken, (token,)), pos


def _p_max_data(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    maximum, pos = decode_varint(data, pos)
    return _tuple_new(MaxData, (maximum,)), pos


def _p_max_stream_data(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    stream_id, pos = decode_varint(data, pos)
    maximum, pos = decode_varint(data, pos)
    return _tuple_new(MaxStreamData, (stream_id, maximum)), pos


def _p_max_streams(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    maximum, pos = decode_varint(data, pos)
    if maximum > MAX_STREAMS_LIMIT:
        raise _fee("MAX_STREAMS above 2^60", t)  # RFC 9000 §19.11
    return _tuple_new(MaxStreams, (t == 0x12, maximum)), pos


def _p_data_blocked(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    limit, pos = decode_varint(data, pos)
    return _tuple_new(DataBlocked, (limit,)), pos


def _p_stream_data_blocked(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    stream_id, pos = decode_varint(data, pos)
    limit, pos = decode_varint(data, pos)
    return _tuple_new(StreamDataBlocked, (stream_id, limit)), pos


def _p_streams_blocked(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    limit, pos = decode_varint(data, pos)
    if limit > MAX_STREAMS_LIMIT:
        # RFC 9000 §19.14: STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR.
        raise _fee("STREAMS_BLOCKED above 2^60", t)
    return _tuple_new(StreamsBlocked, (t == 0x16, limit)), pos


def _p_new_connection_id(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    sequence, pos = decode_varint(data, pos)
    retire_prior_to, pos = decode_varint(data, pos)
    (length,), pos = _bytes_at(data, pos, 1)
    if not 1 <= length <= MAX_CID_LENGTH:
        raise _fee(f"NEW_CONNECTION_ID with a {length}-byte connection ID", t)  # RFC 9000 §19.15
    cid, pos = _bytes_at(data, pos, length)
    token, pos = _bytes_at(data, pos, STATELESS_RESET_TOKEN_LENGTH)
    if retire_prior_to > sequence:
        raise _fee("retire_prior_to above the sequence number", t)  # RFC 9000 §19.15
    return _tuple_new(NewConnectionId, (sequence, retire_prior_to, cid, token)), pos


def _p_retire_connection_id(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    sequence, pos = decode_varint(data, pos)
    return _tuple_new(RetireConnectionId, (sequence,)), pos


def _p_path_challenge(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    value, pos = _bytes_at(data, pos, 8)
    return _tuple_new(PathChallenge, (value,)), pos


def _p_path_response(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    value, pos = _bytes_at(data, pos, 8)
    return _tuple_new(PathResponse, (value,)), pos


def _p_connection_close(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    error_code, pos = decode_varint(data, pos)
    frame_type = 0
    application = t == 0x1D
    if not application:
        frame_type, pos = decode_varint(data, pos)
    length, pos = decode_varint(data, pos)
    reason, pos = _bytes_at(data, pos, length)
    return _tuple_new(ConnectionClose, (error_code, frame_type, reason.decode("utf-8", "replace"), application)), pos


def _p_handshake_done(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    return _HANDSHAKE_DONE, pos


def _p_datagram(data: bytes, pos: int, t: int) -> tuple[Frame, int]:
    if t == 0x31:
        length, pos = decode_varint(data, pos)
        value, pos = _bytes_at(data, pos, length)
        return _tuple_new(Datagram, (value, True)), pos
    return _tuple_new(Datagram, (data[pos:], False)), len(data)


_PARSERS = {
    FrameType.PING: _p_ping,
    FrameType.RESET_STREAM: _p_reset_stream,
    FrameType.STOP_SENDING: _p_stop_sending,
    FrameType.CRYPTO: _parse_crypto,
    FrameType.NEW_TOKEN: _p_new_token,
    **{FrameType.STREAM + bits: _parse_stream for bits in range(8)},
    FrameType.MAX_DATA: _p_max_data,
    FrameType.MAX_STREAM_DATA: _p_max_stream_data,
    FrameType.MAX_STREAMS_BIDI: _p_max_streams,
    FrameType.MAX_STREAMS_UNI: _p_max_streams,
    FrameType.DATA_BLOCKED: _p_data_blocked,
    FrameType.STREAM_DATA_BLOCKED: _p_stream_data_blocked,
    FrameType.STREAMS_BLOCKED_BIDI: _p_streams_blocked,
    FrameType.STREAMS_BLOCKED_UNI: _p_streams_blocked,
    FrameType.NEW_CONNECTION_ID: _p_new_connection_id,
    FrameType.RETIRE_CONNECTION_ID: _p_retire_connection_id,
    FrameType.PATH_CHALLENGE: _p_path_challenge,
    FrameType.PATH_RESPONSE: _p_path_response,
    FrameType.CONNECTION_CLOSE: _p_connection_close,
    FrameType.CONNECTION_CLOSE_APP: _p_connection_close,
    FrameType.HANDSHAKE_DONE: _p_handshake_done,
    FrameType.DATAGRAM: _p_datagram,
    FrameType.DATAGRAM_LEN: _p_datagram,
}
# PADDING and ACK are parsed by the callers themselves (they take other arguments).
_PARSER_VECTOR = tuple(_PARSERS.get(t) for t in range(64))  # type: ignore[call-overload]


def _long_frame_type(data: bytes, pos: int) -> TransportError:
    # A frame type byte >= 0x40 starts a 2-, 4- or 8-byte varint.  Every frame
    # type we know fits one byte, so this is either a known type encoded
    # longer than necessary (RFC 9000 §12.4: MAY be PROTOCOL_VIOLATION; we do)
    # or an unknown type (§12.4: MUST be FRAME_ENCODING_ERROR).
    try:
        value, _ = decode_varint(data, pos)
    except BufferReadError:
        return TransportError.FRAME_ENCODING_ERROR("truncated frame type")
    if value in KNOWN_FRAME_TYPES:
        return TransportError.PROTOCOL_VIOLATION("frame type not minimally encoded", frame_type=value)
    return TransportError.FRAME_ENCODING_ERROR("unknown frame type", frame_type=value)


def parse_frame(data: bytes, pos: int = 0, *, max_ack_ranges: int = MAX_ACK_RANGES) -> tuple[Frame, int]:
    """One frame at `data[pos]` (no packet-type check): (frame, position after it)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    t = data[pos] if pos < len(data) else None
    if t is None:
        raise TransportError.FRAME_ENCODING_ERROR("no frame")
    if t >= 0x40:
        raise _long_frame_type(data, pos)
    pos += 1
    try:
        if t == 0x00:
            return _parse_padding(data, pos)
        if t == 0x02 or t == 0x03:
            return _parse_ack(data, pos, t, max_ack_ranges)
        parser = _PARSER_VECTOR[t]
        if parser is None:
            raise TransportError.FRAME_ENCODING_ERROR("unknown frame type", frame_type=t)
        return parser(data, pos, t)
    except (BufferReadError, IndexError):
        raise _fee("truncated frame", t) from None


def parse_frames(
    payload: bytes,
    packet_type: PacketType,
    *,
    from_server: Optional[bool] = None,
    max_ack_ranges: int = MAX_ACK_RANGES,
) -> ParsedPayload:
    """Every frame of a decrypted packet payload, checked against the packet type
    (RFC 9000 §12.4) and, if `from_server` is given, against the sender's role.

    A PADDING run is one Padding(length) frame.  Raises TransportError.
    The C parser (pyquic._frames) takes the payloads made only of the common
    frames; anything else, malformed input included, goes to the twin
    below, which decides every error.
    """
    parse = payload_parsers(from_server, max_ack_ranges)[packet_type]
    if parse is None:  # a packet type without frames: the twin's UsageError
        return parse_frames_py(payload, packet_type, from_server=from_server, max_ack_ranges=max_ack_ranges)
    return parse(payload)


def parse_frames_py(
    payload: bytes,
    packet_type: PacketType,
    *,
    from_server: Optional[bool] = None,
    max_ack_ranges: int = MAX_ACK_RANGES,
) -> ParsedPayload:
    """parse_frames in pure Python: every frame type, and every error."""
    data = payload if type(payload) is bytes else bytes(payload)
    end = len(data)
    if end == 0:
        # RFC 9000 §12.4: a packet containing no frames is a PROTOCOL_VIOLATION.
        raise TransportError.PROTOCOL_VIOLATION("packet without frames")
    try:
        allowed = _ALLOWED[packet_type, from_server]
    except KeyError:
        raise UsageError(f"{packet_type!r} packets carry no frames") from None
    frames: list = []
    append = frames.append
    ack_eliciting = in_flight = False
    pos = 0
    t = 0
    try:
        while pos < end:
            t = data[pos]
            if t >= 0x40:
                raise _long_frame_type(data, pos)
            if not allowed[t]:
                if not _KNOWN[t]:
                    raise TransportError.FRAME_ENCODING_ERROR("unknown frame type", frame_type=t)  # §12.4
                check_frame_allowed(t, packet_type, from_server=from_server)  # raises the precise error
            pos += 1
            if 0x08 <= t <= 0x0F:
                # STREAM, inline (the receive path's most common frame), with
                # the one- and two-byte varint cases decoded in place.
                v = data[pos]
                if v < 0x40:
                    stream_id = v
                    pos += 1
                else:
                    stream_id, pos = decode_varint(data, pos)
                offset = 0
                if t & STREAM_OFF_BIT:
                    size = 1 << (data[pos] >> 6)
                    stop = pos + size
                    if stop > end:
                        raise BufferReadError("truncated")
                    offset = _from_bytes(data[pos:stop], "big") & _VARINT_MASKS[size]
                    pos = stop
                if t & STREAM_LEN_BIT:
                    v = data[pos]
                    if v >> 6 == 1:
                        length = ((v & 0x3F) << 8) | data[pos + 1]
                        pos += 2
                    else:
                        length, pos = decode_varint(data, pos)
                    stop = pos + length
                    if stop > end:
                        raise BufferReadError("truncated")
                else:
                    stop = end
                if offset + stop - pos > MAX_OFFSET:
                    raise _fee("stream data beyond offset 2^62 - 1", t)  # RFC 9000 §19.8
                append(_tuple_new(Stream, (stream_id, offset, data[pos:stop], t & STREAM_FIN_BIT == 1)))
                pos = stop
                ack_eliciting = in_flight = True
                continue
            if t == 0:
                frame, pos = _parse_padding(data, pos)
                in_flight = True
            elif t == 2 or t == 3:
                frame, pos = _parse_ack(data, pos, t, max_ack_ranges)
            elif t == 0x06:
                frame, pos = _parse_crypto(data, pos, t)
                ack_eliciting = in_flight = True
            else:
                frame, pos = _PARSER_VECTOR[t](data, pos, t)  # type: ignore[misc]
                if _ACK_ELICITING[t]:
                    ack_eliciting = in_flight = True
            append(frame)
    except (BufferReadError, IndexError):
        raise _fee("truncated frame", t) from None
    return _tuple_new(ParsedPayload, (frames, ack_eliciting, in_flight))  # once per packet: skip NamedTuple.__new__


# The C parser, unless PYQUIC_FRAMES=python or the extension was not built
# (PYQUIC_NO_EXTENSION=1).  It builds the frames above through bind().
_c_parse = None
if os.environ.get("PYQUIC_FRAMES") != "python":
    try:
        from . import _frames as _cframes  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        _cframes.bind(Padding, Ack, Crypto, Stream, MaxData, MaxStreamData, MaxStreams, ParsedPayload,
                      _PING, _HANDSHAKE_DONE)
        _c_parse = _cframes.parse
_ALLOWED_BYTES = {key: bytes(vector) for key, vector in _ALLOWED.items()}


@functools.lru_cache(maxsize=16)  # one per (role, cap) a process uses: shared by its connections
def payload_parsers(from_server: Optional[bool], max_ack_ranges: int = MAX_ACK_RANGES) -> tuple:
    """parse_frames with its arguments bound, for the receive path: a tuple
    indexed by PacketType value (None for the packet types without frames)
    of `parse(payload) -> ParsedPayload`."""

    def bound(packet_type: PacketType) -> Callable[[bytes], ParsedPayload]:
        allowed = _ALLOWED_BYTES[packet_type, from_server]
        c_parse = _c_parse

        def parse(payload: bytes) -> ParsedPayload:
            if c_parse is not None and type(payload) is bytes:
                parsed = c_parse(payload, allowed, max_ack_ranges)
                if parsed is not None:
                    return parsed
            return parse_frames_py(payload, packet_type, from_server=from_server, max_ack_ranges=max_ack_ranges)

        return parse

    return tuple(bound(pt) if pt in FRAME_CARRYING_PACKETS else None for pt in PacketType)
