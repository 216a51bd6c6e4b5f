# H3Connection: HTTP/3 (RFC 9114) over a pyquic QuicConnection, sans-I/O.
# QUIC events go in through handle_event(), HTTP/3 events come out; the
# application's requests and responses go out through send_headers() and
# send_data().  It uses only QuicConnection's public API.
#
# Owns: the control stream and both QPACK streams of each side (opened at
# construction, SETTINGS first, then a reserved frame), the peer's SETTINGS,
# GOAWAY in both directions, the per-request-stream state (frame order,
# content-length, QPACK blocking) dropped as soon as both directions are
# done, HTTP Datagrams (RFC 9297), extended CONNECT (RFC 9220), a minimal
# WebTransport stream layer, and the flow-control credit of every byte it
# does not hand to the application as body.
#
# Server push is refused: we never send MAX_PUSH_ID, so any push the peer
# attempts is a protocol error.  A peer's violation either closes the
# connection with its H3/QPACK code (H3Error) or resets the one request
# stream (StreamError, also reported as StreamReset(local=True)).
#
# Caps (all per connection, settable at construction):
#   max_field_section_size   the largest header section we accept, encoded
#                            (the HEADERS frame) or decoded (RFC 9114 §4.2.2
#                            accounting); over it the stream is reset with
#                            H3_EXCESSIVE_LOAD (§4.2.2 lets us refuse it; §8.1)
#   max_control_frame_size   the largest frame buffered on the control stream
#                            (connection error H3_EXCESSIVE_LOAD)
#   max_blocked_buffer       bytes held on one request stream while its
#                            HEADERS waits for QPACK inserts (stream error)
#   qpack_blocked_streams    how many streams may wait for QPACK inserts
# DATA payload and unknown frames are never buffered.
from __future__ import annotations

from typing import Optional

from .. import events as quic_events
from ..buffer import BufferReadError, decode_varint, encode_varint
from ..connection import QuicConnectionState
from ..errors import UsageError
from . import frames as f
from .errors import H3Error, H3ErrorCode, H3UsageError, StreamError
from .events import (
    DatagramReceived, DataReceived, GoAwayReceived, H3Event, Headers, HeadersReceived, SettingsReceived,
    StopSendingReceived, StreamReset, WebTransportStreamDataReceived,
)
from .qpack import (
    QpackDecoder, QpackEncoder, check_outgoing, field_section_size, validate_request, validate_response,
    validate_trailers,
)

# DATA frames up to this size go to QUIC in one write with their frame header.
_JOIN_DATA_MAX = 4096

E = H3ErrorCode
MAX_CONTROL_FRAME_SIZE = 16 * 1024
MAX_BLOCKED_BUFFER = 256 * 1024
MAX_QUARTER_STREAM_ID = (1 << 60) - 1  # RFC 9297 §2.1

# Receive states of a request stream (RFC 9114 §4.1: HEADERS, DATA*, trailing HEADERS).
_EXPECT_HEADERS, _EXPECT_DATA, _AFTER_TRAILERS, _WEBTRANSPORT = range(4)
# Send states.
_SEND_HEADERS, _SEND_DATA, _SEND_DONE = range(3)


class _Request:
    """One bidirectional stream's HTTP/3 state."""

    __slots__ = ("stream_id", "parser", "recv_state", "send_state", "content_length", "received", "method",
                 "blocked", "recv_done", "discard", "session_id")

    def __init__(self, stream_id: int, parser: Optional[f.FrameParser]) -> None:
        self.stream_id = stream_id
        self.parser = parser
        self.recv_state = _EXPECT_HEADERS
        self.send_state = _SEND_HEADERS
        self.content_length: Optional[int] = None
        self.received = 0
        self.method = b""
        self.blocked = False  # its HEADERS waits for QPACK inserts
        self.recv_done = False
        self.discard = False  # we stopped reading (or reset it): incoming bytes are dropped
        self.session_id: Optional[int] = None


class _Uni:
    """A unidirectional stream opened by the peer."""

    __slots__ = ("stream_id", "kind", "prefix", "parser", "session_id")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.kind: Optional[int] = None
        self.prefix = b""  # the stream type (and WebTransport session ID) until complete
        self.parser: Optional[f.FrameParser] = None
        self.session_id: Optional[int] = None


class H3Connection:
    def __init__(
        self,
        quic,
        enable_webtransport: bool = False,
        *,
        max_field_section_size: int = 65536,
        qpack_max_table_capacity: int = 4096,
        qpack_blocked_streams: int = 16,
        enable_connect_protocol: bool = False,
        enable_datagram: bool = False,
        max_control_frame_size: int = MAX_CONTROL_FRAME_SIZE,
        max_blocked_buffer: int = MAX_BLOCKED_BUFFER,
    ) -> None:
        if enable_webtransport:
            enable_connect_protocol = enable_datagram = True
        if enable_datagram and not quic.configuration.max_datagram_frame_size:
            # RFC 9297 §2.1.1: HTTP Datagrams ride on QUIC DATAGRAM frames (RFC 9221).
            raise H3UsageError("enable_datagram needs QuicConfiguration.max_datagram_frame_size")
        self._quic = quic
        self._is_client = quic.configuration.is_client
        self._webtransport = enable_webtransport
        self._datagram = enable_datagram
        self.max_field_section_size = max_field_section_size
        self.max_control_frame_size = max_control_frame_size
        self.max_blocked_buffer = max_blocked_buffer
        self._qpack_capacity = qpack_max_table_capacity
        self._decoder = QpackDecoder(qpack_max_table_capacity, qpack_blocked_streams, max_field_section_size)
        self._encoder = QpackEncoder()
        self._requests: dict[int, _Request] = {}
        self._uni: dict[int, _Uni] = {}
        self._peer_critical: dict[int, int] = {}  # stream type -> the peer's stream ID
        self._received_settings: Optional[dict[int, int]] = None
        self._settings_started = False
        self._goaway_sent: Optional[int] = None
        self._goaway_received: Optional[int] = None
        self._max_push_id_received: Optional[int] = None
        self._next_request = 0  # server: the lowest request stream ID not seen yet
        self._closed = False

        self._control_id = self._open_uni(f.STREAM_CONTROL)
        settings = {
            f.SETTING_QPACK_MAX_TABLE_CAPACITY: qpack_max_table_capacity,
            f.SETTING_QPACK_BLOCKED_STREAMS: qpack_blocked_streams,
            f.SETTING_MAX_FIELD_SECTION_SIZE: max_field_section_size,
        }
        if enable_connect_protocol:
            settings[f.SETTING_ENABLE_CONNECT_PROTOCOL] = 1
        if enable_datagram:
            settings[f.SETTING_H3_DATAGRAM] = 1
        if enable_webtransport:
            settings[f.SETTING_ENABLE_WEBTRANSPORT] = 1
        self._sent_settings = dict(settings)
        # §7.2.4.1 and §7.2.8: a reserved setting and a reserved frame exercise the
        # peer's duty to ignore them; N comes from our control stream's ID, not randomness.
        n = self._control_id >> 2
        settings[f.grease_id(n + 1)] = n
        self._quic.send_stream_data(
            self._control_id,
            f.encode_frame(f.SETTINGS, f.encode_settings(settings)) + f.encode_frame(f.grease_id(n + 2), b"\x00"),
        )
        self._encoder_id = self._open_uni(f.STREAM_QPACK_ENCODER)
        self._decoder_id = self._open_uni(f.STREAM_QPACK_DECODER)

    def _open_uni(self, stream_type: int) -> int:
        stream_id = self._quic.get_next_available_stream_id(is_unidirectional=True)
        self._quic.send_stream_data(stream_id, encode_varint(stream_type))
        return stream_id

    # -- properties ---------------------------------------------------------------------------
    @property
    def received_settings(self) -> Optional[dict[int, int]]:
        return self._received_settings

    @property
    def sent_settings(self) -> dict[int, int]:
        return self._sent_settings

    @property
    def goaway_received(self) -> Optional[int]:
        return self._goaway_received

    # -- QUIC events in -------------------------------------------------------------------------
    def handle_event(self, event) -> list[H3Event]:
        if self._closed:
            return []
        kind = type(event)
        try:
            if kind is quic_events.StreamDataReceived:
                if event.stream_id & 2:
                    return self._uni_data(event.stream_id, event.data, event.end_stream)
                return self._request_data(event.stream_id, event.data, event.end_stream)
            if kind is quic_events.DatagramFrameReceived:
                return self._datagram_received(event.data)
            if kind is quic_events.StreamReset:
                return self._stream_reset(event.stream_id, event.error_code)
            if kind is quic_events.StopSendingReceived:
                return self._stop_sending_received(event.stream_id, event.error_code)
            if kind is quic_events.ConnectionTerminated:
                self._forget_all()
        except H3Error as exc:
            self._connection_error(exc)
        except UsageError:
            # QUIC is closing (its close event is still queued behind this one):
            # nothing more can be sent, so HTTP/3 is over too.
            if self._quic.state < QuicConnectionState.CLOSING:
                raise
            self._forget_all()
        return []

    def _connection_error(self, exc: H3Error) -> None:
        self._quic.close(error_code=exc.error_code, reason_phrase=exc.reason[:256])
        self._forget_all()

    def _forget_all(self) -> None:
        self._closed = True
        self._requests.clear()
        self._uni.clear()

    def _consume(self, stream_id: int, count: int) -> None:
        """Give back the credit of bytes the application never sees as body."""
        if count and not self._quic.auto_consume:
            self._quic.consume(stream_id, count)

    # -- request streams ----------------------------------------------------------------------
    def _is_local(self, stream_id: int) -> bool:
        return bool(stream_id & 1) != self._is_client

    def _new_parser(self) -> f.FrameParser:
        signals = frozenset((f.WEBTRANSPORT_STREAM,)) if self._webtransport else frozenset()
        return f.FrameParser(self._request_frame_cap, signals)

    def _request_frame_cap(self, frame_type: int) -> int:
        # Only HEADERS is buffered on a request stream; other known types are refused at their start.
        return self.max_field_section_size if frame_type == f.HEADERS else f.MAX_VARINT

    def _request_data(self, stream_id: int, data: bytes, fin: bool) -> list[H3Event]:
        st = self._requests.get(stream_id)
        if st is None:
            if self._is_local(stream_id):
                self._consume(stream_id, len(data))  # a stream we are done with
                return []
            if self._is_client and not self._webtransport:
                # §6.1: servers open no bidirectional streams without an extension.
                raise H3Error(E.H3_STREAM_CREATION_ERROR, "server-initiated bidirectional stream")
            # (A peer stream we forgot ended in both directions: QUIC delivers nothing more on it.)
            st = self._requests[stream_id] = _Request(stream_id, self._new_parser())
            self._next_request = max(self._next_request, stream_id + 4)
            if self._goaway_sent is not None and stream_id >= self._goaway_sent and not self._is_client:
                # §5.2: after our GOAWAY, later requests are refused unprocessed.
                self._abort(st, E.H3_REQUEST_REJECTED)
        if st.discard:
            self._consume(stream_id, len(data))
            if fin:
                st.recv_done = True
                self._maybe_drop(st)
            return []
        assert st.parser is not None
        st.parser.push(data, fin)
        if st.blocked:
            if st.parser.buffered > self.max_blocked_buffer:
                return self._stream_error(st, StreamError(E.H3_EXCESSIVE_LOAD, "too much data behind blocked HEADERS"))
            return []
        return self._pump(st)

    def _pump(self, st: _Request, out: Optional[list] = None) -> list[H3Event]:
        out = [] if out is None else out
        parser = st.parser
        assert parser is not None
        stream_id = st.stream_id
        try:
            while not st.blocked:
                item = parser.next()
                if item is None:
                    break
                what = item[0]
                if what == f.DATA_CHUNK:
                    st.received += len(item[1])
                    if st.content_length is not None and st.received > st.content_length:
                        raise StreamError(E.H3_MESSAGE_ERROR, "more DATA than content-length")  # §4.1.2
                    out.append(DataReceived(item[1], stream_id, False))
                elif what == f.FRAME_START:
                    self._check_request_frame(st, item[1])
                elif what == f.FRAME:
                    event = self._headers_frame(st, item[2])
                    if event is not None:
                        out.append(event)
                elif what == f.END:
                    self._request_end(st, out)
                elif what == f.RAW:
                    out.append(WebTransportStreamDataReceived(item[1], stream_id, False, st.session_id))
                elif what == f.SIGNAL:
                    st.session_id = item[2]
                    st.recv_state = _WEBTRANSPORT
                    st.send_state = _SEND_DONE  # the application writes WebTransport data through QUIC
        except f.FrameTooLarge as exc:
            # Only HEADERS is buffered here: a header section over max_field_section_size,
            # refused before buffering (§4.2.2).  Its block may name dynamic entries: cancel it.
            self._consume(stream_id, parser.take_overhead())
            self._send_cancellation(stream_id)
            return self._stream_error(st, StreamError(E.H3_EXCESSIVE_LOAD, exc.reason), out)
        except StreamError as exc:
            self._consume(stream_id, parser.take_overhead())
            return self._stream_error(st, exc, out)
        self._consume(stream_id, parser.take_overhead())
        return out

    def _check_request_frame(self, st: _Request, frame_type: int) -> None:
        if frame_type == f.DATA:
            if st.recv_state != _EXPECT_DATA:
                raise H3Error(E.H3_FRAME_UNEXPECTED, "DATA before HEADERS or after trailers")  # §4.1
        elif frame_type == f.HEADERS:
            if st.recv_state == _AFTER_TRAILERS:
                raise H3Error(E.H3_FRAME_UNEXPECTED, "HEADERS after trailers")  # §4.1
        elif frame_type == f.PUSH_PROMISE and self._is_client:
            raise H3Error(E.H3_ID_ERROR, "PUSH_PROMISE but we sent no MAX_PUSH_ID")  # §7.2.5
        elif frame_type in f.KNOWN_FRAMES:
            # §7.2.4, §7.2.6, §7.2.7, §7.2.3, §7.2.8; a client's PUSH_PROMISE (§7.2.5)
            raise H3Error(E.H3_FRAME_UNEXPECTED, f"frame 0x{frame_type:x} on a request stream")

    def _headers_frame(self, st: _Request, block: bytes) -> Optional[HeadersReceived]:
        try:
            decoded = self._decoder.decode(st.stream_id, block)
        except StreamError:
            self._send_cancellation(st.stream_id)
            raise
        if decoded is None:
            st.blocked = True
            return None
        return self._headers_decoded(st, decoded)

    def _headers_decoded(self, st: _Request, decoded: tuple[bytes, Headers]) -> HeadersReceived:
        instructions, headers = decoded
        if instructions:
            self._quic.send_stream_data(self._decoder_id, instructions)
        if st.recv_state == _EXPECT_HEADERS:
            if self._is_client:
                message = validate_response(headers)
                if not message.interim:
                    st.recv_state = _EXPECT_DATA
                    status = message.status
                    # §4.1.2 via RFC 9110 §6.4.1: HEAD, 204 and 304 carry no content whatever the length says.
                    if st.method != b"HEAD" and status not in (204, 304):
                        st.content_length = message.content_length
            else:
                connect = self._sent_settings.get(f.SETTING_ENABLE_CONNECT_PROTOCOL) == 1
                message = validate_request(headers, connect_protocol=connect)
                st.recv_state = _EXPECT_DATA
                st.content_length = message.content_length
        else:
            validate_trailers(headers)
            st.recv_state = _AFTER_TRAILERS
        return HeadersReceived(headers, st.stream_id, False)

    def _request_end(self, st: _Request, out: list) -> None:
        if st.recv_state == _EXPECT_HEADERS:
            if self._is_client:
                raise StreamError(E.H3_MESSAGE_ERROR, "response stream ended without a final response")
            raise StreamError(E.H3_REQUEST_INCOMPLETE, "request stream ended without HEADERS")  # §4.1.1
        if st.content_length is not None and st.received != st.content_length:
            raise StreamError(E.H3_MESSAGE_ERROR, "DATA shorter than content-length")  # §4.1.2
        st.recv_done = True
        last = out[-1] if out else None
        if last is not None and last.stream_id == st.stream_id and hasattr(last, "stream_ended"):
            last.stream_ended = True
        elif st.recv_state == _WEBTRANSPORT:
            out.append(WebTransportStreamDataReceived(b"", st.stream_id, True, st.session_id))
        else:
            out.append(DataReceived(b"", st.stream_id, True))
        st.parser = None
        self._maybe_drop(st)

    def _stream_error(self, st: _Request, exc: StreamError, out: Optional[list] = None) -> list[H3Event]:
        out = [] if out is None else out
        self._abort(st, exc.error_code)
        out.append(StreamReset(st.stream_id, exc.error_code, local=True))
        return out

    def _abort(self, st: _Request, code: int) -> None:
        """Stop both directions of a request stream with this code."""
        parser = st.parser
        if parser is not None:
            self._consume(st.stream_id, parser.buffered + parser.take_overhead())
            if st.recv_done is False and parser.fin_received:
                st.recv_done = True
        self._cancel_header_block(st)
        st.parser = None
        st.discard = True
        st.blocked = False
        if st.send_state != _SEND_DONE:
            st.send_state = _SEND_DONE
            self._quic.reset_stream(st.stream_id, code)
        if not st.recv_done:
            self._quic.stop_sending(st.stream_id, code)
        self._maybe_drop(st)

    def _cancel_header_block(self, st: _Request) -> None:
        # RFC 9204 §4.4.2: a header block we will never decode is cancelled so the
        # peer's encoder may evict what it referenced.
        in_headers = st.parser is not None and st.parser.frame_type == f.HEADERS
        if st.blocked or in_headers:
            self._send_cancellation(st.stream_id)

    def _send_cancellation(self, stream_id: int) -> None:
        instructions = self._decoder.cancel(stream_id)
        if instructions and self._qpack_capacity:
            self._quic.send_stream_data(self._decoder_id, instructions)

    def _maybe_drop(self, st: _Request) -> None:
        if st.recv_done and st.send_state == _SEND_DONE:
            self._requests.pop(st.stream_id, None)

    def _stream_reset(self, stream_id: int, error_code: int) -> list[H3Event]:
        if stream_id & 2:
            uni = self._uni.pop(stream_id, None)
            if uni is not None and self._peer_critical.get(uni.kind) == stream_id:
                raise H3Error(E.H3_CLOSED_CRITICAL_STREAM, "critical stream reset")  # §6.2.1, RFC 9204 §4.2
            return []
        st = self._requests.get(stream_id)
        if st is None:
            return []
        self._cancel_header_block(st)
        st.parser = None
        st.blocked = False
        st.discard = st.recv_done = True
        self._maybe_drop(st)
        return [StreamReset(stream_id, error_code)]

    def _stop_sending_received(self, stream_id: int, error_code: int) -> list[H3Event]:
        if stream_id in (self._control_id, self._encoder_id, self._decoder_id):
            raise H3Error(E.H3_CLOSED_CRITICAL_STREAM, "the peer stopped a critical stream")  # §6.2.1
        st = self._requests.get(stream_id)
        if st is None:
            return []
        st.send_state = _SEND_DONE  # QUIC has reset our sending part with the peer's code
        self._maybe_drop(st)
        return [StopSendingReceived(stream_id, error_code)]

    # -- unidirectional streams ---------------------------------------------------------------
    def _uni_data(self, stream_id: int, data: bytes, fin: bool) -> list[H3Event]:
        uni = self._uni.get(stream_id)
        if uni is None:
            uni = self._uni[stream_id] = _Uni(stream_id)
        if uni.kind is None:
            head = uni.prefix + data
            parsed = f.parse_varint_prefix(head)
            if parsed is None:
                if fin:
                    self._consume(stream_id, len(head))  # ended before saying what it is: ignore it
                    del self._uni[stream_id]
                else:
                    uni.prefix = head
                return []
            uni.prefix = b""
            uni.kind, used = parsed
            self._consume(stream_id, used)
            data = head[used:]
            self._open_uni_kind(uni)
        kind = uni.kind
        if kind == f.STREAM_CONTROL:
            assert uni.parser is not None
            uni.parser.push(data, fin)
            out = self._control_frames(uni.parser)
            self._consume(stream_id, uni.parser.take_overhead())
            if fin:
                raise H3Error(E.H3_CLOSED_CRITICAL_STREAM, "control stream closed")  # §6.2.1
            return out
        if kind == f.STREAM_QPACK_ENCODER:
            out = []
            if data:
                self._consume(stream_id, len(data))
                for unblocked in self._decoder.feed_encoder(data):
                    out += self._resume(unblocked)
            if fin:
                raise H3Error(E.H3_CLOSED_CRITICAL_STREAM, "QPACK encoder stream closed")  # RFC 9204 §4.2
            return out
        if kind == f.STREAM_QPACK_DECODER:
            if data:
                self._consume(stream_id, len(data))
                self._encoder.feed_decoder(data)
            if fin:
                raise H3Error(E.H3_CLOSED_CRITICAL_STREAM, "QPACK decoder stream closed")  # RFC 9204 §4.2
            return []
        if kind == f.STREAM_WEBTRANSPORT and self._webtransport:
            return self._webtransport_uni(uni, data, fin)
        self._consume(stream_id, len(data))  # an ignored stream
        if fin:
            self._uni.pop(stream_id, None)
        return []

    def _open_uni_kind(self, uni: _Uni) -> None:
        kind = uni.kind
        if kind in (f.STREAM_CONTROL, f.STREAM_QPACK_ENCODER, f.STREAM_QPACK_DECODER):
            if kind in self._peer_critical:
                # §6.2.1, RFC 9204 §4.2: one of each.
                raise H3Error(E.H3_STREAM_CREATION_ERROR, f"second stream of type {kind}")
            self._peer_critical[kind] = uni.stream_id
            if kind == f.STREAM_CONTROL:
                uni.parser = f.FrameParser(self._control_frame_cap)
        elif kind == f.STREAM_PUSH:
            if self._is_client:
                raise H3Error(E.H3_ID_ERROR, "push stream but we sent no MAX_PUSH_ID")  # §4.6
            raise H3Error(E.H3_STREAM_CREATION_ERROR, "push stream from a client")  # §6.2.2
        elif kind == f.STREAM_WEBTRANSPORT and self._webtransport:
            pass
        else:
            # §6.2: unknown stream types are ignored; ask the peer to stop sending.
            self._quic.stop_sending(uni.stream_id, E.H3_STREAM_CREATION_ERROR)

    def _control_frame_cap(self, frame_type: int) -> int:
        if frame_type in (f.SETTINGS, f.GOAWAY, f.MAX_PUSH_ID, f.CANCEL_PUSH):
            return self.max_control_frame_size
        return f.MAX_VARINT  # refused at its start, never buffered

    def _webtransport_uni(self, uni: _Uni, data: bytes, fin: bool) -> list[H3Event]:
        if uni.session_id is None:
            head = uni.prefix + data
            parsed = f.parse_varint_prefix(head)
            if parsed is None:
                uni.prefix = head
                if fin:
                    self._consume(uni.stream_id, len(head))
                    self._uni.pop(uni.stream_id, None)
                return []
            uni.session_id, used = parsed
            uni.prefix = b""
            self._consume(uni.stream_id, used)
            data = head[used:]
        if fin:
            self._uni.pop(uni.stream_id, None)
        if not data and not fin:
            return []
        return [WebTransportStreamDataReceived(data, uni.stream_id, fin, uni.session_id)]

    def _resume(self, stream_id: int) -> list[H3Event]:
        st = self._requests.get(stream_id)
        if st is None or not st.blocked:
            self._decoder.cancel(stream_id)
            return []
        try:
            decoded = self._decoder.resume(stream_id)
            if decoded is None:
                return []
            st.blocked = False
            out: list = [self._headers_decoded(st, decoded)]
        except StreamError as exc:
            st.blocked = False
            self._send_cancellation(stream_id)
            return self._stream_error(st, exc)
        return self._pump(st, out)

    # -- the control stream -------------------------------------------------------------------
    def _control_frames(self, parser: f.FrameParser) -> list[H3Event]:
        out: list[H3Event] = []
        while True:
            item = parser.next()
            if item is None or item[0] == f.END:
                return out
            if item[0] == f.FRAME_START:
                frame_type = item[1]
                if not self._settings_started and frame_type != f.SETTINGS:
                    raise H3Error(E.H3_MISSING_SETTINGS, "first control frame is not SETTINGS")  # §6.2.1
                if frame_type == f.SETTINGS and self._settings_started:
                    raise H3Error(E.H3_FRAME_UNEXPECTED, "second SETTINGS")  # §7.2.4
                if frame_type in (f.DATA, f.HEADERS, f.PUSH_PROMISE) or frame_type in f.HTTP2_ONLY_FRAMES:
                    raise H3Error(E.H3_FRAME_UNEXPECTED, f"frame 0x{frame_type:x} on the control stream")
                if frame_type == f.MAX_PUSH_ID and self._is_client:
                    raise H3Error(E.H3_FRAME_UNEXPECTED, "MAX_PUSH_ID from a server")  # §7.2.7
                if frame_type == f.SETTINGS:
                    self._settings_started = True
            elif item[0] == f.FRAME:
                event = self._control_frame(item[1], item[2])
                if event is not None:
                    out.append(event)

    def _control_frame(self, frame_type: int, payload: bytes) -> Optional[H3Event]:
        if frame_type == f.SETTINGS:
            return self._settings(f.decode_settings(payload))
        if frame_type == f.GOAWAY:
            goaway = f.decode_single_varint(payload, "GOAWAY")
            if self._is_client and goaway % 4 != 0:
                raise H3Error(E.H3_ID_ERROR, "GOAWAY names no client-initiated bidirectional stream")  # §5.2
            if self._goaway_received is not None and goaway > self._goaway_received:
                raise H3Error(E.H3_ID_ERROR, "GOAWAY ID increased")  # §5.2
            self._goaway_received = goaway
            return GoAwayReceived(goaway)
        if frame_type == f.MAX_PUSH_ID:
            push_id = f.decode_single_varint(payload, "MAX_PUSH_ID")
            if self._max_push_id_received is not None and push_id < self._max_push_id_received:
                raise H3Error(E.H3_ID_ERROR, "MAX_PUSH_ID decreased")  # §7.2.7
            self._max_push_id_received = push_id  # we never push, so it changes nothing else
            return None
        if frame_type == f.CANCEL_PUSH:
            f.decode_single_varint(payload, "CANCEL_PUSH")
            # §7.2.3: a push ID we never promised, or above a MAX_PUSH_ID we never sent.
            raise H3Error(E.H3_ID_ERROR, "CANCEL_PUSH without any push")
        return None

    def _settings(self, settings: dict[int, int]) -> SettingsReceived:
        for setting in (f.SETTING_ENABLE_CONNECT_PROTOCOL, f.SETTING_H3_DATAGRAM):
            if settings.get(setting, 0) not in (0, 1):
                # RFC 9220 §3, RFC 9297 §2.1.1: only 0 and 1 are defined.
                raise H3Error(E.H3_SETTINGS_ERROR, f"setting 0x{setting:x} must be 0 or 1")
        if settings.get(f.SETTING_H3_DATAGRAM) == 1 and not self._quic.peer_max_datagram_frame_size:
            # RFC 9297 §2.1.1: HTTP datagrams need the QUIC DATAGRAM extension.
            raise H3Error(E.H3_SETTINGS_ERROR, "H3_DATAGRAM without the max_datagram_frame_size transport parameter")
        self._received_settings = settings
        instructions = self._encoder.apply_settings(
            settings.get(f.SETTING_QPACK_MAX_TABLE_CAPACITY, 0), settings.get(f.SETTING_QPACK_BLOCKED_STREAMS, 0)
        )
        if instructions:
            self._quic.send_stream_data(self._encoder_id, instructions)
        return SettingsReceived(dict(settings))

    # -- datagrams ----------------------------------------------------------------------------
    def _datagram_received(self, data: bytes) -> list[H3Event]:
        if not self._datagram:
            raise H3Error(E.H3_DATAGRAM_ERROR, "HTTP Datagram but we did not send SETTINGS_H3_DATAGRAM")
        try:
            quarter, pos = decode_varint(data, 0)
        except BufferReadError:
            raise H3Error(E.H3_DATAGRAM_ERROR, "datagram without a quarter stream ID") from None
        if quarter > MAX_QUARTER_STREAM_ID:
            raise H3Error(E.H3_DATAGRAM_ERROR, "quarter stream ID out of range")  # RFC 9297 §2.1
        return [DatagramReceived(bytes(data[pos:]), quarter * 4)]

    # -- sending ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise H3UsageError("the connection is closed")

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        """HEADERS on a request stream: the request (client), the response or an
        interim response (server), or trailers after DATA (then end_stream=True)."""
        self._check_open()
        st = self._requests.get(stream_id)
        if st is None:
            if not self._is_client or stream_id & 3:
                raise H3UsageError(f"stream {stream_id} is not an open request stream")
            if stream_id < self._quic.get_next_available_stream_id(is_unidirectional=False):
                raise H3UsageError(f"stream {stream_id} is closed")
            if self._goaway_received is not None and stream_id >= self._goaway_received:
                # §5.2: the server will not process it.
                raise H3UsageError(f"stream {stream_id} is at or above the peer's GOAWAY ({self._goaway_received})")
            st = _Request(stream_id, self._new_parser())
        if st.send_state == _SEND_DONE or st.recv_state == _WEBTRANSPORT:
            raise H3UsageError(f"stream {stream_id}: sending is finished")
        interim = False
        if st.send_state == _SEND_HEADERS:
            if self._is_client:
                peer = self._received_settings or {}
                connect = peer.get(f.SETTING_ENABLE_CONNECT_PROTOCOL) == 1
                message = check_outgoing(validate_request, headers, connect_protocol=connect)
                st.method = message.pseudo.get(b":method", b"")
            else:
                interim = check_outgoing(validate_response, headers).interim
                if interim and end_stream:
                    raise H3UsageError("an interim response cannot end the stream")
        else:
            check_outgoing(validate_trailers, headers)
            if not end_stream:
                raise H3UsageError("trailers end the stream: pass end_stream=True")
        limit = (self._received_settings or {}).get(f.SETTING_MAX_FIELD_SECTION_SIZE)
        if limit is not None and field_section_size(headers) > limit:
            raise H3UsageError(f"header section larger than the peer's SETTINGS_MAX_FIELD_SECTION_SIZE ({limit})")
        instructions, block = self._encoder.encode(stream_id, headers)
        if instructions:
            self._quic.send_stream_data(self._encoder_id, instructions)
        try:
            self._quic.send_stream_data(stream_id, f.encode_frame(f.HEADERS, block), end_stream)
        except UsageError as exc:
            raise H3UsageError(str(exc)) from None
        self._requests[stream_id] = st
        if end_stream:
            st.send_state = _SEND_DONE
            self._maybe_drop(st)
        elif not interim:
            st.send_state = _SEND_DATA

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._check_open()
        st = self._requests.get(stream_id)
        if st is None or st.send_state != _SEND_DATA:
            raise H3UsageError(f"stream {stream_id}: DATA needs HEADERS first and an open stream")
        try:
            header = f.encode_frame_header(f.DATA, len(data)) if data else b""
            if len(data) <= _JOIN_DATA_MAX:  # one write: the copy costs less than a second call
                self._quic.send_stream_data(stream_id, header + data, end_stream)
            else:
                self._quic.send_stream_data(stream_id, header)
                self._quic.send_stream_data(stream_id, data, end_stream)
        except UsageError as exc:
            raise H3UsageError(str(exc)) from None
        if end_stream:
            st.send_state = _SEND_DONE
            self._maybe_drop(st)

    def send_datagram(self, stream_id: int, data: bytes) -> None:
        """An HTTP Datagram (RFC 9297 §2.1) for the request on stream_id."""
        self._check_open()
        if not self._datagram or (self._received_settings or {}).get(f.SETTING_H3_DATAGRAM) != 1:
            raise H3UsageError("HTTP Datagrams need SETTINGS_H3_DATAGRAM=1 from both sides")
        if stream_id & 3:
            raise H3UsageError("HTTP Datagrams belong to client-initiated bidirectional streams")
        try:
            self._quic.send_datagram_frame(encode_varint(stream_id >> 2) + bytes(data))
        except UsageError as exc:
            raise H3UsageError(str(exc)) from None

    def create_webtransport_stream(self, session_id: int, is_unidirectional: bool = False) -> int:
        """A stream of the WebTransport session on session_id; the application
        then writes to it with quic.send_stream_data."""
        self._check_open()
        if not self._webtransport:
            raise H3UsageError("WebTransport is not enabled")
        stream_id = self._quic.get_next_available_stream_id(is_unidirectional)
        if is_unidirectional:
            self._quic.send_stream_data(stream_id, encode_varint(f.STREAM_WEBTRANSPORT) + encode_varint(session_id))
        else:
            self._quic.send_stream_data(stream_id, encode_varint(f.WEBTRANSPORT_STREAM) + encode_varint(session_id))
            st = self._requests[stream_id] = _Request(stream_id, self._new_parser())
            assert st.parser is not None
            st.parser.raw()
            st.session_id = session_id
            st.recv_state = _WEBTRANSPORT
            st.send_state = _SEND_DONE
        return stream_id

    def send_goaway(self, stream_id: Optional[int] = None) -> int:
        """Graceful shutdown (§5.2): a server names the lowest request stream it
        has not processed (and refuses those from it on); a client names push
        ID 0 (it allows none).  Returns the ID sent."""
        self._check_open()
        if stream_id is None:
            stream_id = 0 if self._is_client else self._next_request
        if not self._is_client and stream_id % 4:
            raise H3UsageError("a server's GOAWAY names a client-initiated bidirectional stream")
        if self._goaway_sent is not None and stream_id > self._goaway_sent:
            raise H3UsageError("a GOAWAY ID must not increase")  # §5.2
        self._goaway_sent = stream_id
        self._quic.send_stream_data(self._control_id, f.encode_frame(f.GOAWAY, encode_varint(stream_id)))
        return stream_id

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a request stream (RESET_STREAM with error_code)."""
        self._check_open()
        self._quic.reset_stream(stream_id, error_code)
        st = self._requests.get(stream_id)
        if st is not None:
            st.send_state = _SEND_DONE
            self._maybe_drop(st)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """Stop reading a request stream: what arrives later is dropped (its
        credit given back) until the peer's reset or FIN."""
        self._check_open()
        self._quic.stop_sending(stream_id, error_code)
        st = self._requests.get(stream_id)
        if st is not None and not st.discard:
            parser = st.parser
            if parser is not None:
                self._consume(stream_id, parser.buffered + parser.take_overhead())
                st.recv_done = st.recv_done or parser.fin_received
            self._cancel_header_block(st)
            st.parser = None
            st.blocked = False
            st.discard = True
            self._maybe_drop(st)


__all__ = ["H3Connection", "MAX_CONTROL_FRAME_SIZE", "MAX_BLOCKED_BUFFER"]
