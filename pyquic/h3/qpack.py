# QPACK (RFC 9204) through pylsqpack, and the rules a decoded field section
# must follow (RFC 9114 §4.2, §4.3; RFC 9220 for extended CONNECT).
#
# Owns: the encoder and decoder wrappers (pylsqpack's exceptions become the
# QPACK error codes), the cap on a decoded field section
# (max_field_section_size, counted as RFC 9114 §4.2.2 counts it: name +
# value + 32 per field) and the field validation of requests, responses and
# trailers.
#
# The cap must hold before decoding, not only after: a few bytes of
# dynamic-table references can name entries of up to the table capacity
# each, so a small header block could decode to far more than the cap.
# SizeBound therefore follows the peer's encoder stream the way the decoder
# does, keeping only an upper bound of each entry's size (a Huffman string
# decodes to at most 8/5 of its length: the shortest code has 5 bits), and
# bounds a header block's decoded size from its representations alone.  A
# block whose bound passes the cap by more than DECODE_BOUND_SLACK is
# refused without being decoded; any other block is decoded and its exact
# size checked.
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Generator, Optional

import pylsqpack

from .errors import H3Error, H3ErrorCode, H3UsageError, StreamError

Headers = list[tuple[bytes, bytes]]

FIELD_OVERHEAD = 32  # RFC 9114 §4.2.2 and RFC 9204 §3.2.1: per-field accounting overhead
DECODE_BOUND_SLACK = 2  # how far a block's size bound may exceed the cap before it is refused undecoded


def field_section_size(headers: Headers) -> int:
    return sum(len(name) + len(value) + FIELD_OVERHEAD for name, value in headers)


# -- the static table's entry sizes, read from pylsqpack once ------------------------------

_STATIC: list[tuple[int, int]] = []  # (name length, name + value + 32) per static index


def _static_sizes() -> list[tuple[int, int]]:
    if not _STATIC:
        decoder = pylsqpack.Decoder(0, 0)
        for index in range(99):  # RFC 9204 Appendix A: indexes 0..98
            line = bytes((0xC0 | index,)) if index < 63 else bytes((0xFF, index - 63))
            _, ((name, value),) = decoder.feed_header(index, b"\x00\x00" + line)
            _STATIC.append((len(name), len(name) + len(value) + FIELD_OVERHEAD))
    return _STATIC


def _string_bound(length: int, huffman: int) -> int:
    return length * 8 // 5 if huffman else length


class SizeBound:
    """Upper bounds of the peer's dynamic-table entries, from its encoder
    stream (fed incrementally; string bytes are skipped, never buffered), and
    of a header block's decoded field section size."""

    def __init__(self, max_table_capacity: int) -> None:
        self.capacity = max_table_capacity
        self.max_entries = max_table_capacity // 32
        # (name bound, entry size bound) of the newest entries; older ones are evicted for sure.
        self._entries: deque = deque(maxlen=self.max_entries + 1)
        self.insert_count = 0
        self._skip = 0
        self._run = self._instructions()
        self._want = next(self._run)

    # -- the encoder stream (RFC 9204 §4.3) --
    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                n = min(self._skip, end - pos)
                self._skip -= n
                pos += n
                if self._skip:
                    return
                self._step(None)
            else:
                self._step(data[pos])
                pos += 1

    def _step(self, value: Optional[int]) -> None:
        want = self._run.send(value)
        while want == 0:  # a zero-length string: nothing to skip
            want = self._run.send(None)
        self._skip = want or 0

    def _integer(self, first: int, bits: int) -> Generator[Optional[int], Optional[int], int]:
        mask = (1 << bits) - 1
        value = first & mask
        if value < mask:
            return value
        shift = 0
        while True:
            byte = yield None
            assert byte is not None
            if shift < 64:
                value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def _string(self) -> Generator[Optional[int], Optional[int], int]:
        first = yield None
        assert first is not None
        length = yield from self._integer(first, 7)
        yield length
        return min(_string_bound(length, first & 0x80), self.capacity)

    def _instructions(self) -> Generator[Optional[int], Optional[int], None]:
        while True:
            first = yield None
            assert first is not None
            if first & 0x80:  # Insert with Name Reference
                index = yield from self._integer(first, 6)
                if first & 0x40:
                    static = _static_sizes()
                    name = static[index][0] if index < len(static) else self.capacity
                else:
                    name = self._entry(self.insert_count - 1 - index)[0]
                value = yield from self._string()
                self._insert(name, value)
            elif first & 0x40:  # Insert with Literal Name
                length = yield from self._integer(first, 5)
                yield length
                name = _string_bound(length, first & 0x20)
                value = yield from self._string()
                self._insert(name, value)
            elif first & 0x20:  # Set Dynamic Table Capacity: entries stay bounded by our maximum
                yield from self._integer(first, 5)
            else:  # Duplicate
                index = yield from self._integer(first, 5)
                name, size = self._entry(self.insert_count - 1 - index)
                self._insert(name, size - name - FIELD_OVERHEAD)

    def _insert(self, name: int, value: int) -> None:
        self._entries.append((min(name, self.capacity), min(name + value + FIELD_OVERHEAD, self.capacity)))
        self.insert_count += 1

    def _entry(self, absolute: int) -> tuple[int, int]:
        offset = absolute - (self.insert_count - len(self._entries))
        if 0 <= offset < len(self._entries):
            return self._entries[offset]
        return self.capacity, self.capacity  # unknown: no entry can be larger than the table

    # -- a header block (RFC 9204 §4.5) --
    def required_insert_count(self, block: bytes) -> Optional[int]:
        """The block's Required Insert Count (§4.5.1.1), None if invalid."""
        if not block:
            return None
        try:
            encoded, _ = _read_integer(block, 0, 8)
        except IndexError:
            return None
        if encoded == 0:
            return 0
        full_range = 2 * self.max_entries
        if full_range == 0 or encoded > full_range:
            return None
        max_value = self.insert_count + self.max_entries
        required = (max_value // full_range) * full_range + encoded - 1
        if required > max_value:
            if required <= full_range:
                return None
            required -= full_range
        return required or None

    def block_bound(self, block: bytes) -> int:
        """An upper bound of the decoded size of a header block (whose
        references are all known: not blocked).  A malformed block is bounded
        by what precedes the malformation; the decoder then refuses it."""
        required = self.required_insert_count(block) or 0
        total = 0
        try:
            _, pos = _read_integer(block, 0, 8)
            sign = block[pos] & 0x80
            delta, pos = _read_integer(block, pos, 7)
            base = required - delta - 1 if sign else required + delta
            static = _static_sizes()
            while pos < len(block):
                first = block[pos]
                if first & 0x80:  # Indexed Field Line
                    index, pos = _read_integer(block, pos, 6)
                    if first & 0x40:
                        total += static[index][1] if index < len(static) else self.capacity
                    else:
                        total += self._entry(base - 1 - index)[1]
                elif first & 0x40:  # Literal with Name Reference
                    index, pos = _read_integer(block, pos, 4)
                    if first & 0x10:
                        name = static[index][0] if index < len(static) else self.capacity
                    else:
                        name = self._entry(base - 1 - index)[0]
                    value, pos = _read_string(block, pos)
                    total += name + value + FIELD_OVERHEAD
                elif first & 0x20:  # Literal with Literal Name
                    length, pos = _read_integer(block, pos, 3)
                    name = _string_bound(length, first & 0x08)
                    pos += length
                    value, pos = _read_string(block, pos)
                    total += name + value + FIELD_OVERHEAD
                elif first & 0x10:  # Indexed Field Line with Post-Base Index
                    index, pos = _read_integer(block, pos, 4)
                    total += self._entry(base + index)[1]
                else:  # Literal with Post-Base Name Reference
                    index, pos = _read_integer(block, pos, 3)
                    value, pos = _read_string(block, pos)
                    total += self._entry(base + index)[0] + value + FIELD_OVERHEAD
        except IndexError:
            pass
        return total


def _read_integer(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """A prefixed integer (RFC 7541 §5.1) at pos; IndexError if truncated."""
    mask = (1 << bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        if shift < 64:
            value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _read_string(data: bytes, pos: int) -> tuple[int, int]:
    huffman = data[pos] & 0x80
    length, pos = _read_integer(data, pos, 7)
    if pos + length > len(data):
        raise IndexError
    return _string_bound(length, huffman), pos + length


# -- the decoder ---------------------------------------------------------------------------


class QpackDecoder:
    """Our decoder: the peer's encoder stream in, header blocks in, decoder
    stream instructions and field sections out, each section within
    max_field_section_size."""

    def __init__(self, max_table_capacity: int, blocked_streams: int, max_field_section_size: int) -> None:
        self._decoder = pylsqpack.Decoder(max_table_capacity, blocked_streams)
        self._bound = SizeBound(max_table_capacity)
        self.max_field_section_size = max_field_section_size
        self.blocked_streams = blocked_streams
        self.blocked: dict[int, bytes] = {}  # stream ID -> its header block, waiting for inserts

    def feed_encoder(self, data: bytes) -> list[int]:
        """Encoder stream bytes; the IDs of streams they unblocked."""
        try:
            unblocked = self._decoder.feed_encoder(data)
        except pylsqpack.EncoderStreamError as exc:
            raise H3Error(H3ErrorCode.QPACK_ENCODER_STREAM_ERROR, str(exc)) from None
        self._bound.feed(data)
        return [stream_id for stream_id in unblocked if stream_id in self.blocked]

    def decode(self, stream_id: int, block: bytes) -> Optional[tuple[bytes, Headers]]:
        """(decoder stream bytes, headers), or None while blocked on inserts
        that have not arrived (resume() when feed_encoder names the stream)."""
        required = self._bound.required_insert_count(block)
        if required is not None and required > self._bound.insert_count:
            if len(self.blocked) >= self.blocked_streams:
                # RFC 9204 §2.1.2: more blocked streams than we allowed.
                raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, "too many blocked streams")
            self.blocked[stream_id] = block
            try:
                result = self._decoder.feed_header(stream_id, block)
            except pylsqpack.StreamBlocked:
                return None
            except (pylsqpack.DecompressionFailed, ValueError) as exc:
                self.blocked.pop(stream_id, None)
                raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from None
            self.blocked.pop(stream_id, None)
            return self._checked(result)
        self._check_bound(stream_id, block)
        try:
            result = self._decoder.feed_header(stream_id, block)
        except pylsqpack.StreamBlocked:
            # Not waiting for any insert, so the block itself is incomplete.
            self._decoder.cancel_stream(stream_id)
            raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, "truncated header block") from None
        except (pylsqpack.DecompressionFailed, ValueError) as exc:
            raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from None
        return self._checked(result)

    def resume(self, stream_id: int) -> Optional[tuple[bytes, Headers]]:
        block = self.blocked.get(stream_id)
        if block is None:
            return None
        required = self._bound.required_insert_count(block)
        if required is not None and required > self._bound.insert_count:
            return None
        del self.blocked[stream_id]
        try:
            self._check_bound(stream_id, block)
        except StreamError:
            self._decoder.cancel_stream(stream_id)
            raise
        try:
            result = self._decoder.resume_header(stream_id)
        except pylsqpack.StreamBlocked:
            self._decoder.cancel_stream(stream_id)
            raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, "truncated header block") from None
        except (pylsqpack.DecompressionFailed, ValueError) as exc:
            raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from None
        return self._checked(result)

    def cancel(self, stream_id: int) -> bytes:
        """The stream is abandoned before its header block was decoded: the
        Stream Cancellation instruction (RFC 9204 §4.4.2) to send."""
        self.blocked.pop(stream_id, None)
        try:
            return self._decoder.cancel_stream(stream_id)
        except RuntimeError:
            return b""

    def _check_bound(self, stream_id: int, block: bytes) -> None:
        bound = self._bound.block_bound(block)
        if bound > self.max_field_section_size * DECODE_BOUND_SLACK:
            # RFC 9114 §4.2.2 lets us refuse a section larger than we advertised.
            raise StreamError(
                H3ErrorCode.H3_EXCESSIVE_LOAD,
                f"header block may decode to {bound} bytes, over max_field_section_size "
                f"{self.max_field_section_size}",
            )

    def _checked(self, result: tuple[bytes, Headers]) -> tuple[bytes, Headers]:
        size = field_section_size(result[1])
        if size > self.max_field_section_size:
            raise StreamError(
                H3ErrorCode.H3_EXCESSIVE_LOAD,
                f"field section of {size} bytes over max_field_section_size {self.max_field_section_size}",
            )
        return result


class QpackEncoder:
    def __init__(self) -> None:
        self._encoder = pylsqpack.Encoder()

    def apply_settings(self, max_table_capacity: int, blocked_streams: int) -> bytes:
        # pylsqpack takes C unsigned ints; a larger value from the peer is only an upper limit.
        return self._encoder.apply_settings(min(max_table_capacity, 1 << 30), min(blocked_streams, 1 << 16))

    def encode(self, stream_id: int, headers: Headers) -> tuple[bytes, bytes]:
        """(encoder stream bytes, header block)."""
        return self._encoder.encode(stream_id, headers)

    def feed_decoder(self, data: bytes) -> None:
        try:
            self._encoder.feed_decoder(data)
        except pylsqpack.DecoderStreamError as exc:
            raise H3Error(H3ErrorCode.QPACK_DECODER_STREAM_ERROR, str(exc)) from None


# -- field validation (RFC 9114 §4.2, §4.3) --------------------------------------------------

REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
RESPONSE_PSEUDO = frozenset((b":status",))
# §4.2: connection-specific fields make a message malformed.
CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
_BAD_NAME_BYTES = frozenset(range(0x00, 0x21)) | frozenset(range(0x41, 0x5B)) | frozenset(range(0x7F, 0x100))
_BAD_VALUE_BYTES = re.compile(rb"[\x00\r\n]")  # RFC 9114 §4.2, RFC 9110 §5.5
_WHITESPACE = (0x20, 0x09)


@dataclass
class Message:
    """What the connection needs to know of a validated field section."""

    pseudo: dict[bytes, bytes]
    content_length: Optional[int] = None

    @property
    def status(self) -> Optional[int]:
        status = self.pseudo.get(b":status")
        return int(status) if status is not None else None

    @property
    def interim(self) -> bool:
        status = self.status
        return status is not None and 100 <= status < 200


def _split(headers: Headers, allowed: frozenset, kind: str) -> tuple[dict[bytes, bytes], Optional[int]]:
    pseudo: dict[bytes, bytes] = {}
    regular_seen = False
    content_length: Optional[int] = None
    for name, value in headers:
        if not name:
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "empty field name")
        if name[0] == 0x3A:  # ':'
            # §4.3: pseudo-header fields come first, only the defined ones, each once.
            if regular_seen:
                raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"pseudo-header {name!r} after a regular field")
            if name not in allowed:
                raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"pseudo-header {name!r} not allowed in a {kind}")
            if name in pseudo:
                raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"pseudo-header {name!r} repeated")
            pseudo[name] = value
        else:
            regular_seen = True
            # §4.2: names are lowercase tokens.
            if not _BAD_NAME_BYTES.isdisjoint(name) or b":" in name:
                raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"invalid field name {name!r}")
            if name in CONNECTION_SPECIFIC:
                raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"connection-specific field {name!r}")
            if name == b"te" and value != b"trailers":
                raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "te other than 'trailers'")
            if name == b"content-length":
                if not value.isdigit() or len(value) > 19:
                    raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "invalid content-length")
                if content_length is not None and content_length != int(value):
                    raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "conflicting content-length")
                content_length = int(value)
        if _BAD_VALUE_BYTES.search(value):
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"field {name!r} has a forbidden character")
        if value and (value[0] in _WHITESPACE or value[-1] in _WHITESPACE):
            # RFC 9110 §5.5: a field value has no leading or trailing whitespace (aioquic refuses it too).
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"field {name!r} value has surrounding whitespace")
    return pseudo, content_length


def validate_request(headers: Headers, *, connect_protocol: bool) -> Message:
    """§4.3.1, §4.4 and RFC 9220 §4; connect_protocol: whether the receiver
    sent SETTINGS_ENABLE_CONNECT_PROTOCOL=1."""
    pseudo, content_length = _split(headers, REQUEST_PSEUDO, "request")
    method = pseudo.get(b":method")
    if not method:
        raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "no :method")
    if b":protocol" in pseudo:
        if not connect_protocol:
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, ":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL")
        if method != b"CONNECT":
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, ":protocol in a request other than CONNECT")
        required: tuple = (b":scheme", b":path", b":authority")
    elif method == b"CONNECT":
        # §4.4: CONNECT names only :authority; :scheme and :path are omitted.
        if b":scheme" in pseudo or b":path" in pseudo:
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "CONNECT with :scheme or :path")
        required = (b":authority",)
    else:
        required = (b":scheme", b":path")
    for name in required:
        if not pseudo.get(name):
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"missing or empty {name.decode()}")
    if pseudo.get(b":scheme") in (b"http", b"https") and not pseudo.get(b":authority"):
        if not any(name == b"host" and value for name, value in headers):
            raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "no :authority or host")
    return Message(pseudo, content_length)


def validate_response(headers: Headers) -> Message:
    pseudo, content_length = _split(headers, RESPONSE_PSEUDO, "response")
    status = pseudo.get(b":status")
    if status is None or len(status) != 3 or not status.isdigit() or status[0] == 0x30:
        raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, f"invalid :status {status!r}")
    if status == b"101":
        raise StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "101 is not used in HTTP/3")  # §4.5
    return Message(pseudo, content_length)


def validate_trailers(headers: Headers) -> Message:
    pseudo, _ = _split(headers, frozenset(), "trailer section")  # §4.3: no pseudo-headers in trailers
    return Message(pseudo)


def check_outgoing(validate, headers: Headers, **kwargs) -> Message:
    """Our own fields, by the rules we hold the peer to: misuse, not a protocol error."""
    try:
        return validate(headers, **kwargs)
    except StreamError as exc:
        raise H3UsageError(f"invalid header section: {exc.reason}") from None


__all__ = [
    "FIELD_OVERHEAD", "DECODE_BOUND_SLACK", "field_section_size", "SizeBound", "QpackDecoder", "QpackEncoder",
    "Message", "validate_request", "validate_response", "validate_trailers", "check_outgoing",
]
