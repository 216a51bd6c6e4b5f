# HTTP/3 on the event loop: the asyncio face of pyquic.h3.H3Connection.
# Owns, per connection (H3Protocol, a QuicConnectionProtocol):
#   - choosing the application by ALPN: "h3" gets an H3Connection; any other
#     ALPN (hq-interop on a shared port) falls through to the plain stream
#     handler.  Events that arrive before the ALPN is known (0-RTT) wait in
#     a list bounded by QUIC flow control (no credit is returned for them);
#   - one _H3Stream per request stream: received headers, a body buffer that
#     returns flow-control credit only as the application reads (so an unread
#     body holds the peer back, not our memory), trailers, HTTP datagrams
#     (bounded queue), and a drain waiter for send backpressure;
#   - the client API (H3Client: get/request/stream) and the server API (a
#     request handler called with an H3Request per request stream);
#   - graceful shutdown: GOAWAY, then wait for requests in progress.
# The protocol rules (framing, QPACK, validation, error codes) are not here:
# they live in pyquic/h3/, which this layer drives through its public API.
from __future__ import annotations

import asyncio
import collections
import functools
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Optional, Union
from urllib.parse import urlsplit

from .. import events
from ..config import QuicConfiguration
from ..h3 import events as h3_events
from ..h3.connection import H3Connection
from ..h3.errors import H3ErrorCode
from .client import connect
from .protocol import STREAM_WRITE_HIGH, ConnectionTerminatedError, QuicConnectionProtocol
from .server import QuicServer, serve

__all__ = [
    "H3Protocol",
    "H3Client",
    "H3Response",
    "H3Request",
    "H3RequestHandler",
    "H3StreamError",
    "connect_h3",
    "serve_h3",
]

logger = logging.getLogger("pyquic.asyncio.h3")

H3_ALPN = "h3"
# HTTP datagrams waiting for the application, per stream: past this the
# oldest is dropped (datagrams are unreliable by definition, RFC 9297).
MAX_QUEUED_DATAGRAMS = 64
# Request body chunks an iterable body may queue before we wait for the
# stream's send buffer to drain (the core's buffer is what really bounds it).
SEND_CHUNK = 64 * 1024

Headers = list[tuple[bytes, bytes]]
HeaderInput = Union[Iterable[tuple[Union[str, bytes], Union[str, bytes]]], dict]
H3RequestHandler = Callable[["H3Request"], Awaitable[None]]


class H3StreamError(ConnectionError):
    """A request stream ended abnormally: reset by the peer (error_code is
    its H3 code), refused after GOAWAY, or the connection went away."""

    def __init__(self, stream_id: int, error_code: int, what: str) -> None:
        super().__init__(f"HTTP/3 stream {stream_id}: {what} (0x{error_code:x})")
        self.stream_id = stream_id
        self.error_code = error_code


def _b(value: Union[str, bytes]) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _header_list(headers: Optional[HeaderInput]) -> Headers:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(_b(name).lower(), _b(value)) for name, value in items]


def _text(value: bytes) -> str:
    return value.decode("latin-1")


class _Body:
    """A received body: chunks in arrival order.  Credit for each chunk goes
    back to the peer (QuicConnection.consume) when the application takes it."""

    __slots__ = ("_proto", "_stream_id", "_chunks", "_ended", "_error", "_waiter", "received")

    def __init__(self, proto: "H3Protocol", stream_id: int) -> None:
        self._proto = proto
        self._stream_id = stream_id
        self._chunks: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._error: Optional[Exception] = None
        self._waiter: Optional[asyncio.Future] = None
        self.received = 0

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, data: bytes, ended: bool) -> None:
        if self._ended or self._error is not None:
            self._proto._give_credit(self._stream_id, len(data))
            return
        if data:
            self._chunks.append(data)
            self.received += len(data)
        if ended:
            self._ended = True
        self._wake()

    def fail(self, exc: Exception) -> None:
        if self._ended or self._error is not None:
            return
        self._error = exc
        self.discard()
        self._wake()

    def discard(self) -> None:
        """Drop what is buffered (the application will not read it) and give its credit back."""
        while self._chunks:
            self._proto._give_credit(self._stream_id, len(self._chunks.popleft()))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None

    async def read_chunk(self) -> bytes:
        """The next chunk; b"" at the end of the body."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._waiter = self._proto._loop.create_future()
            await self._waiter
        chunk = self._chunks.popleft()
        self._proto._give_credit(self._stream_id, len(chunk))
        return chunk

    async def read(self) -> bytes:
        parts = []
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                return
            yield chunk


class _H3Stream:
    """One request stream as the asyncio layer sees it (see the module header)."""

    __slots__ = ("proto", "stream_id", "headers", "headers_waiter", "body", "trailers", "datagrams",
                 "datagram_waiter", "drain_waiter", "send_ended", "error", "datagrams_dropped")

    def __init__(self, proto: "H3Protocol", stream_id: int) -> None:
        self.proto = proto
        self.stream_id = stream_id
        self.headers: Optional[Headers] = None
        self.headers_waiter: Optional[asyncio.Future] = None
        self.body = _Body(proto, stream_id)
        self.trailers: Headers = []
        self.datagrams: collections.deque[bytes] = collections.deque()
        self.datagram_waiter: Optional[asyncio.Future] = None
        self.drain_waiter: Optional[asyncio.Future] = None
        self.send_ended = False
        self.error: Optional[Exception] = None
        self.datagrams_dropped = 0

    # -- from the H3 events
    def on_headers(self, headers: Headers, ended: bool) -> None:
        if self.headers is None:
            informational = self.proto._is_client and bool(headers) and headers[0][0] == b":status" \
                and headers[0][1][:1] == b"1"
            if not informational:  # a 1xx response is followed by the final one (RFC 9114 §4.1)
                self.headers = headers
                waiter = self.headers_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        else:
            self.trailers = headers
        if ended:
            self.body.feed(b"", True)

    def on_datagram(self, data: bytes) -> None:
        if len(self.datagrams) >= MAX_QUEUED_DATAGRAMS:
            self.datagrams.popleft()
            self.datagrams_dropped += 1
        self.datagrams.append(data)
        waiter = self.datagram_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc
        self.body.fail(exc)
        for waiter in (self.headers_waiter, self.datagram_waiter, self.drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
                # Nobody may be waiting on it: do not warn about an unretrieved exception.
                waiter.exception()

    # -- called by QuicConnectionProtocol._check_writers
    def resume_writing(self) -> None:
        waiter = self.drain_waiter
        self.drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_headers(self) -> Headers:
        if self.headers is None:
            if self.error is not None:
                raise self.error
            self.headers_waiter = self.proto._loop.create_future()
            await self.headers_waiter
        return self.headers  # type: ignore[return-value]

    async def receive_datagram(self) -> bytes:
        while not self.datagrams:
            if self.error is not None:
                raise self.error
            self.datagram_waiter = self.proto._loop.create_future()
            await self.datagram_waiter
        return self.datagrams.popleft()


class H3Protocol(QuicConnectionProtocol):
    """A QuicConnectionProtocol that speaks HTTP/3 when ALPN says "h3".

    ``request_handler(request)`` (servers) is run as a task for every
    request; ``h3_options`` go to H3Connection (max_field_section_size,
    enable_connect_protocol, enable_datagram, ...).  Any other ALPN falls
    through to the plain stream API (``stream_handler``)."""

    def __init__(self, quic: Any, stream_handler: Any = None, *,
                 request_handler: Optional[H3RequestHandler] = None,
                 h3_options: Optional[dict] = None) -> None:
        super().__init__(quic, stream_handler)
        self._h3: Optional[H3Connection] = None
        self._alpn_known = False
        self._early_events: list = []
        self._h3_streams: dict[int, _H3Stream] = {}
        self._request_handler = request_handler
        self._h3_options = dict(h3_options or {})
        self._is_client = bool(quic.configuration.is_client)
        self._requests_idle: Optional[asyncio.Future] = None
        self._settings_waiter: Optional[asyncio.Future] = None
        self.goaway_received: Optional[int] = None

    @property
    def h3(self) -> Optional[H3Connection]:
        """The H3Connection, once ALPN chose "h3"."""
        return self._h3

    @property
    def active_requests(self) -> int:
        return len(self._h3_streams)

    # -- QUIC events ------------------------------------------------------------------------

    def connect(self, addr: Any, transmit: bool = True) -> None:
        # A client that offers only h3 starts HTTP/3 now, so that requests
        # can go in 0-RTT (the core holds stream data until it has keys).
        self._quic.connect(addr, now=self._loop.time())
        if self._quic.configuration.alpn_protocols == [H3_ALPN]:
            self._choose_application(H3_ALPN)
        if transmit:
            self.transmit()

    def _choose_application(self, alpn: Optional[str]) -> None:
        self._alpn_known = True
        if alpn == H3_ALPN:
            self._h3 = H3Connection(self._quic, **self._h3_options)
        early, self._early_events = self._early_events, []
        for queued in early:
            self._dispatch(queued)

    def quic_event_received(self, event: Any) -> None:
        # (A connection that ends before it names its application starts none.)
        if not self._alpn_known and not isinstance(event, events.ConnectionTerminated):
            alpn = self._quic.alpn_protocol
            if alpn is None and isinstance(event, events.HandshakeCompleted):
                alpn = event.alpn_protocol
            if alpn is None and not self._is_client and self._quic.configuration.alpn_protocols == [H3_ALPN]:
                alpn = H3_ALPN  # a server that speaks only h3 need not wait for the handshake (0-RTT)
            if alpn is None:
                # 0-RTT data before the handshake names the application.
                if isinstance(event, (events.StreamDataReceived, events.StreamReset,
                                      events.StopSendingReceived, events.DatagramFrameReceived)):
                    self._early_events.append(event)
                    self._fed_reader = True  # its credit goes back once it is dispatched
                return
            self._choose_application(alpn)
        self._dispatch(event)

    def _dispatch(self, event: Any) -> None:
        h3 = self._h3
        if h3 is None:
            if isinstance(event, events.StreamDataReceived):
                self._fed_reader = False
                super().quic_event_received(event)
                if not self._fed_reader and event.data:
                    self._give_credit(event.stream_id, len(event.data))
                self._fed_reader = True
            else:
                super().quic_event_received(event)
            return
        for h3_event in h3.handle_event(event):
            self._h3_event_received(h3_event)
        # H3Connection returns the credit of framing bytes itself; body bytes
        # go back as the application reads them (_Body).
        self._fed_reader = True

    def _h3_event_received(self, event: h3_events.H3Event) -> None:
        """Route one HTTP/3 event to its stream (override to see them all)."""
        if isinstance(event, (h3_events.HeadersReceived, h3_events.DataReceived)) and event.push_id is not None:
            return  # we never allow push (no MAX_PUSH_ID): the core refuses it before this
        if isinstance(event, h3_events.HeadersReceived):
            stream = self._h3_streams.get(event.stream_id)
            if stream is None:
                if self._is_client or self._request_handler is None:
                    return  # a response to a request we gave up on
                stream = self._h3_streams[event.stream_id] = _H3Stream(self, event.stream_id)
                stream.on_headers(event.headers, event.stream_ended)
                self._start_request(stream)
            else:
                stream.on_headers(event.headers, event.stream_ended)
        elif isinstance(event, h3_events.DataReceived):
            stream = self._h3_streams.get(event.stream_id)
            if stream is None:
                self._give_credit(event.stream_id, len(event.data))
            else:
                stream.body.feed(event.data, event.stream_ended)
        elif isinstance(event, h3_events.DatagramReceived):
            stream = self._h3_streams.get(event.stream_id)
            if stream is not None:
                stream.on_datagram(event.data)
        elif isinstance(event, h3_events.StreamReset):
            stream = self._h3_streams.get(event.stream_id)
            if stream is not None:
                what = "reset: the peer broke the protocol on it" if event.local else "reset by the peer"
                exc = H3StreamError(event.stream_id, event.error_code, what)
                stream.body.fail(exc)
                if stream.headers is None or event.local:
                    stream.fail(exc)
        elif isinstance(event, h3_events.StopSendingReceived):
            stream = self._h3_streams.get(event.stream_id)
            if stream is not None:
                stream.send_ended = True
                exc = H3StreamError(event.stream_id, event.error_code, "the peer stopped reading")
                waiter = stream.drain_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
                    waiter.exception()
                self._write_paused.pop(event.stream_id, None)
        elif isinstance(event, h3_events.SettingsReceived):
            waiter = self._settings_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif isinstance(event, h3_events.GoAwayReceived):
            self.goaway_received = event.stream_id
            if self._is_client:
                for stream_id, stream in list(self._h3_streams.items()):
                    if stream_id >= event.stream_id and stream.headers is None:
                        # Not processed by the server (RFC 9114 §5.2): safe to retry elsewhere.
                        stream.fail(H3StreamError(stream_id, H3ErrorCode.H3_REQUEST_REJECTED,
                                                  "not processed (GOAWAY)"))

    def _on_terminated(self, event: Any) -> None:
        super()._on_terminated(event)
        exc = ConnectionTerminatedError(event)
        for stream in self._h3_streams.values():
            stream.fail(exc)
        self._h3_streams.clear()
        self._early_events.clear()
        self._wake_idle()
        waiter = self._settings_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()

    # -- credit, sending, stream lifetime ------------------------------------------------

    def _give_credit(self, stream_id: int, count: int) -> None:
        if count and self._consume is not None and self._terminated is None:
            self._consume(stream_id, count)
            self._transmit_soon()

    def _send_headers(self, stream: _H3Stream, headers: Headers, end_stream: bool) -> None:
        self._check_usable(stream)
        self._h3.send_headers(stream.stream_id, headers, end_stream=end_stream)  # type: ignore[union-attr]
        if end_stream:
            stream.send_ended = True
        self._transmit_soon()

    async def _send_data(self, stream: _H3Stream, data: bytes, end_stream: bool) -> None:
        self._check_usable(stream)
        self._h3.send_data(stream.stream_id, data, end_stream=end_stream)  # type: ignore[union-attr]
        if end_stream:
            stream.send_ended = True
        self._transmit_soon()
        if not end_stream and self._send_buffered(stream.stream_id) > STREAM_WRITE_HIGH:
            stream.drain_waiter = self._loop.create_future()
            self._write_paused[stream.stream_id] = stream  # type: ignore[assignment]
            await stream.drain_waiter

    def _check_usable(self, stream: _H3Stream) -> None:
        if self._terminated is not None:
            raise ConnectionTerminatedError(self._terminated)
        if stream.error is not None:
            raise stream.error
        if stream.send_ended:
            raise H3StreamError(stream.stream_id, 0, "the sending side is already finished")
        if self._h3 is None:
            raise ConnectionError("HTTP/3 was not negotiated on this connection")

    def _finish_stream(self, stream: _H3Stream, cancel_code: int) -> None:
        """The application is done with a stream: what it left unread or unsent
        is cancelled (STOP_SENDING / RESET_STREAM with cancel_code) and the
        stream forgotten."""
        if self._h3_streams.pop(stream.stream_id, None) is None:
            return
        if self._terminated is None and self._h3 is not None:
            if not stream.body.ended and stream.error is None:
                self._h3.stop_sending(stream.stream_id, cancel_code)
            if not stream.send_ended:
                self._h3.reset_stream(stream.stream_id, cancel_code)
            self._transmit_soon()
        stream.body.discard()
        stream.send_ended = True
        self._write_paused.pop(stream.stream_id, None)
        if not self._h3_streams:
            self._wake_idle()

    def _wake_idle(self) -> None:
        waiter = self._requests_idle
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- server --------------------------------------------------------------------------------

    def _start_request(self, stream: _H3Stream) -> None:
        request = H3Request(self, stream)
        task = self._loop.create_task(self._run_request(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_request(self, request: "H3Request") -> None:
        stream = request._stream
        try:
            await self._request_handler(request)  # type: ignore[misc]
            if not stream.send_ended and stream.error is None and self._terminated is None:
                if not request.response_started:
                    await request.send_response(500)
                await self._send_data(stream, b"", True)
        except ConnectionError:
            pass  # the stream or the connection went away under the handler
        except Exception as exc:
            logger.error("HTTP/3 request handler failed: %r", exc, exc_info=exc)
            if self._terminated is None and stream.error is None and not stream.send_ended:
                if request.response_started:
                    self._finish_stream(stream, H3ErrorCode.H3_INTERNAL_ERROR)
                else:
                    try:
                        await request.respond(500, body=b"internal server error\n")
                    except ConnectionError:
                        pass
        finally:
            # A handler need not read the whole request body (RFC 9114 §4.1.2:
            # STOP_SENDING with H3_NO_ERROR once the response is complete).
            self._finish_stream(stream, H3ErrorCode.H3_NO_ERROR)

    def send_goaway(self) -> None:
        """Start a graceful shutdown (RFC 9114 §5.2): no new requests."""
        if self._h3 is not None and self._terminated is None:
            self._h3.send_goaway()
            self.transmit()

    async def shutdown(self, timeout: float = 10.0) -> None:
        """GOAWAY, wait (at most ``timeout``) for requests in progress, then close with H3_NO_ERROR."""
        self.send_goaway()
        if self._h3_streams and self._terminated is None:
            self._requests_idle = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._requests_idle), timeout)
            except asyncio.TimeoutError:
                pass
        self.close(error_code=H3ErrorCode.H3_NO_ERROR)
        await self.wait_closed()

    # -- client --------------------------------------------------------------------------------

    async def wait_settings(self) -> dict:
        """The peer's SETTINGS, once they have arrived (extended CONNECT and
        HTTP datagrams may only be used after, RFC 9220 §3, RFC 9297 §2.1.1)."""
        while self._h3 is None or self._h3.received_settings is None:
            if self._terminated is not None:
                raise ConnectionTerminatedError(self._terminated)
            if self._settings_waiter is None or self._settings_waiter.done():
                self._settings_waiter = self._loop.create_future()
            await self._settings_waiter
        return self._h3.received_settings

    def _open_request(self) -> _H3Stream:
        if self._terminated is not None:
            raise ConnectionTerminatedError(self._terminated)
        if self._h3 is None:
            raise ConnectionError("HTTP/3 was not negotiated on this connection")
        stream_id = self._quic.get_next_available_stream_id()
        if self.goaway_received is not None and stream_id >= self.goaway_received:
            raise H3StreamError(stream_id, H3ErrorCode.H3_REQUEST_REJECTED, "the server sent GOAWAY")
        stream = self._h3_streams[stream_id] = _H3Stream(self, stream_id)
        return stream


class _Message:
    """What a request and a response share: headers, body, trailers, datagrams."""

    def __init__(self, proto: H3Protocol, stream: _H3Stream) -> None:
        self._proto = proto
        self._stream = stream
        self.stream_id = stream.stream_id

    @property
    def trailers(self) -> Headers:
        """The trailer fields, once the body has been read to its end."""
        return self._stream.trailers

    async def read(self) -> bytes:
        """The whole body (what is left of it)."""
        return await self._stream.body.read()

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk as it arrives."""
        return self._stream.body.iter_bytes()

    def send_datagram(self, data: bytes) -> None:
        """An HTTP datagram on this stream (RFC 9297; both sides must enable it)."""
        self._proto._h3.send_datagram(self.stream_id, data)  # type: ignore[union-attr]
        self._proto._transmit_soon()

    async def receive_datagram(self) -> bytes:
        return await self._stream.receive_datagram()


class H3Request(_Message):
    """One request as a server handler sees it: method, path, authority,
    scheme, protocol (extended CONNECT, RFC 9220), headers (the regular
    fields; ``raw_headers`` has all), body by read()/iter_bytes(); the
    response by send_response()/send_data()/send_trailers() or respond()."""

    def __init__(self, proto: H3Protocol, stream: _H3Stream) -> None:
        super().__init__(proto, stream)
        self.raw_headers: Headers = stream.headers or []
        pseudo = {name: value for name, value in self.raw_headers if name.startswith(b":")}
        self.method = _text(pseudo.get(b":method", b""))
        self.path = _text(pseudo.get(b":path", b""))
        self.authority = _text(pseudo.get(b":authority", b""))
        self.scheme = _text(pseudo.get(b":scheme", b""))
        protocol = pseudo.get(b":protocol")
        self.protocol: Optional[str] = _text(protocol) if protocol is not None else None
        self.headers: Headers = [(n, v) for n, v in self.raw_headers if not n.startswith(b":")]
        self.response_started = False
        self.status: Optional[int] = None
        self.bytes_sent = 0

    @property
    def connection(self) -> H3Protocol:
        return self._proto

    @property
    def remote_address(self) -> Any:
        return self._proto.quic.peer_address

    async def send_response(self, status: int, headers: Optional[HeaderInput] = None, *,
                            end_stream: bool = False) -> None:
        if self.response_started:
            raise RuntimeError("the response headers were already sent")
        self._proto._send_headers(self._stream, [(b":status", str(status).encode())] + _header_list(headers),
                                  end_stream)
        self.response_started = True
        self.status = status

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        """Body bytes; waits while the stream's send buffer is full."""
        if not self.response_started:
            raise RuntimeError("send_response() first")
        self.bytes_sent += len(data)
        await self._proto._send_data(self._stream, data, end_stream)

    async def send_trailers(self, headers: HeaderInput) -> None:
        """Trailer fields; they end the response."""
        if not self.response_started:
            raise RuntimeError("send_response() first")
        self._proto._send_headers(self._stream, _header_list(headers), True)

    async def respond(self, status: int, headers: Optional[HeaderInput] = None, body: bytes = b"") -> None:
        """The whole response at once."""
        fields = _header_list(headers)
        if not any(name == b"content-length" for name, _ in fields):
            fields.append((b"content-length", str(len(body)).encode()))
        await self.send_response(status, fields, end_stream=not body)
        if body:
            await self.send_data(body, end_stream=True)


class H3Response(_Message):
    """A response as the client sees it: status, headers, then the body."""

    def __init__(self, proto: H3Protocol, stream: _H3Stream, headers: Headers) -> None:
        super().__init__(proto, stream)
        status = dict(headers).get(b":status", b"0")
        self.status = int(status) if status.isdigit() else 0
        self.raw_headers = headers
        self.headers: Headers = [(n, v) for n, v in headers if not n.startswith(b":")]
        self.content: Optional[bytes] = None

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        key = name.lower().encode("latin-1")
        for field, value in self.headers:
            if field == key:
                return _text(value)
        return default

    async def read(self) -> bytes:
        data = await super().read()
        self.content = data if self.content is None else self.content + data
        return data

    @property
    def bytes_received(self) -> int:
        return self._stream.body.received

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        """More request body on this stream: for a CONNECT tunnel (RFC 9114
        §4.4, RFC 9220), whose request stream stays open both ways."""
        await self._proto._send_data(self._stream, data, end_stream)


class H3Client:
    """Requests over one HTTP/3 connection (see connect_h3)."""

    def __init__(self, protocol: H3Protocol, authority: str, scheme: str = "https") -> None:
        self.protocol = protocol
        self.authority = authority
        self.scheme = scheme

    def _target(self, url: str) -> tuple[bytes, bytes, bytes]:
        if url.startswith("/"):
            return self.scheme.encode(), self.authority.encode(), url.encode()
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return (parts.scheme or self.scheme).encode(), (parts.netloc or self.authority).encode(), path.encode()

    @asynccontextmanager
    async def stream(self, method: str, url: str, *, headers: Optional[HeaderInput] = None,
                     body: Union[None, bytes, AsyncIterable[bytes]] = None,
                     trailers: Optional[HeaderInput] = None,
                     protocol: Optional[str] = None) -> AsyncIterator[H3Response]:
        """Send a request; yields the response once its headers arrive, with
        its body still to read.  ``body`` is bytes or an async iterable of
        bytes (streamed with backpressure), ``trailers`` follow it;
        ``protocol`` makes an extended CONNECT (RFC 9220).  Leaving the
        block cancels what was left unread."""
        proto = self.protocol
        scheme, authority, path = self._target(url)
        if method == "CONNECT" and protocol is None:
            fields = [(b":method", b"CONNECT"), (b":authority", authority)]
        else:
            fields = [(b":method", method.encode()), (b":scheme", scheme), (b":authority", authority),
                      (b":path", path)]
            if protocol is not None:
                fields.append((b":protocol", protocol.encode()))
        extra = _header_list(headers)
        if isinstance(body, (bytes, bytearray, memoryview)) and not any(n == b"content-length" for n, _ in extra):
            extra.append((b"content-length", str(len(body)).encode()))
        if protocol is not None:
            await proto.wait_settings()
        stream = proto._open_request()
        sender: Optional[asyncio.Task] = None
        try:
            open_ended = method == "CONNECT"  # the tunnel stays open both ways
            trailer_fields = _header_list(trailers)
            proto._send_headers(stream, fields + extra,
                                end_stream=body is None and not trailer_fields and not open_ended)
            if isinstance(body, (bytes, bytearray, memoryview)):
                await proto._send_data(stream, bytes(body), not trailer_fields)
                if trailer_fields:
                    proto._send_headers(stream, trailer_fields, True)
            elif body is not None:
                sender = proto._loop.create_task(self._send_body(stream, body, trailer_fields))
            elif trailer_fields:
                proto._send_headers(stream, trailer_fields, True)
            headers_in = await stream.wait_headers()
            yield H3Response(proto, stream, headers_in)
            if sender is not None:
                try:
                    await sender
                except H3StreamError:
                    # A server may answer in full and stop our upload with
                    # STOP_SENDING (RFC 9114 §4.1.2): only an error if the
                    # response did not complete.
                    if not stream.body.ended:
                        raise
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            proto._finish_stream(stream, H3ErrorCode.H3_REQUEST_CANCELLED)

    async def _send_body(self, stream: _H3Stream, body: AsyncIterable[bytes], trailers: Headers) -> None:
        async for chunk in body:
            if chunk:
                await self.protocol._send_data(stream, bytes(chunk), False)
        if trailers:
            self.protocol._send_headers(stream, trailers, True)
        else:
            await self.protocol._send_data(stream, b"", True)

    async def request(self, method: str, url: str, *, headers: Optional[HeaderInput] = None,
                      body: Union[None, bytes, AsyncIterable[bytes]] = None,
                      trailers: Optional[HeaderInput] = None) -> H3Response:
        """Send a request and read the whole response (``response.content``)."""
        async with self.stream(method, url, headers=headers, body=body, trailers=trailers) as response:
            await response.read()
            return response

    async def get(self, url: str, headers: Optional[HeaderInput] = None) -> H3Response:
        return await self.request("GET", url, headers=headers)

    async def post(self, url: str, body: Union[bytes, AsyncIterable[bytes]],
                   headers: Optional[HeaderInput] = None) -> H3Response:
        return await self.request("POST", url, headers=headers, body=body)


@asynccontextmanager
async def connect_h3(host: str, port: int, *, configuration: Optional[QuicConfiguration] = None,
                     h3_options: Optional[dict] = None, wait_connected: bool = True,
                     **connect_kwargs: Any) -> AsyncIterator[H3Client]:
    """Open an HTTP/3 connection; yields an H3Client.  ALPN defaults to
    ["h3"].  Leaving the block closes the connection with H3_NO_ERROR."""
    if configuration is None:
        configuration = QuicConfiguration(is_client=True)
    if not configuration.alpn_protocols:
        configuration.alpn_protocols = [H3_ALPN]
    create = functools.partial(H3Protocol, h3_options=h3_options)
    async with connect(host, port, configuration=configuration, create_protocol=create,
                       wait_connected=wait_connected, **connect_kwargs) as protocol:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            yield H3Client(protocol, authority)  # type: ignore[arg-type]
        finally:
            protocol.close(error_code=H3ErrorCode.H3_NO_ERROR)


async def serve_h3(host: str, port: int, *, configuration: QuicConfiguration, handler: H3RequestHandler,
                   h3_options: Optional[dict] = None, stream_handler: Any = None,
                   **serve_kwargs: Any) -> QuicServer:
    """Serve HTTP/3: ``await handler(request)`` for every request (an
    H3Request).  ALPN defaults to ["h3"]; with more protocols listed, a
    connection that negotiates another one gets the plain stream API and
    ``stream_handler`` (e.g. hq-interop beside h3 on one port).  Other
    keyword arguments go to pyquic.asyncio.serve (retry, max_connections, ...)."""
    if not configuration.alpn_protocols:
        configuration.alpn_protocols = [H3_ALPN]
    create = functools.partial(H3Protocol, request_handler=handler, h3_options=h3_options)
    return await serve(host, port, configuration=configuration, create_protocol=create,
                       stream_handler=stream_handler, **serve_kwargs)


async def shutdown_h3(server: QuicServer, timeout: float = 10.0) -> None:
    """Graceful shutdown of an HTTP/3 server: GOAWAY on every connection,
    wait (at most ``timeout``) for their requests, then close the server."""
    protocols = [p for p in server.connections if isinstance(p, H3Protocol)]
    if protocols:
        await asyncio.gather(*(p.shutdown(timeout) for p in protocols), return_exceptions=True)
    server.close()
    await server.wait_closed()
