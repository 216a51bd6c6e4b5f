# The per-connection asyncio driver: one QuicConnectionProtocol per
# QuicConnection (the sans-I/O core), named and shaped like aioquic's so
# applications can switch.  Owns:
#   - feeding received datagrams to the core and, once per socket drain,
#     handling its events and transmitting (one transmit per batch, not per
#     packet, so the core can fill GSO batches);
#   - the core's timer, armed with loop.call_at (the core's `now` IS
#     loop.time(): monotonic seconds), re-armed lazily: a timer that moved
#     later is left to fire early and re-arm, which saves a cancel and a
#     heap push on almost every transmit;
#   - transmitting: datagram_batches_to_send() (buffer, segment size, addr)
#     goes straight to a GSO write; paused while the socket is full;
#   - waiting for the handshake, ping, closing and wait_closed;
#   - active migration (change_local_address): the new socket from
#     connect(), the core's change_path(), and the old socket kept a moment;
#   - streams as asyncio StreamReader/StreamWriter pairs with backpressure
#     both ways: readers give flow-control credit back only as the
#     application reads (auto_consume off + consume()); writers pause
#     (drain() waits) while the stream's send buffer is above a high mark.
# Sockets are not here (udp.py), nor routing between connections (server.py).
from __future__ import annotations

import asyncio
import logging
from asyncio.streams import FlowControlMixin
from typing import Any, Callable, Optional

from .. import events
from ..errors import UsageError

logger = logging.getLogger("pyquic.asyncio")
INTERNAL_ERROR = 0x1  # RFC 9000 §20.1

NetworkAddress = Any
QuicStreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]

# Writer backpressure: drain() waits while more than HIGH bytes of a stream
# are unacknowledged in the core; it resumes below LOW.
STREAM_WRITE_HIGH = 1 << 20
STREAM_WRITE_LOW = 256 << 10
# StreamReader limit: readline()/readuntil() bound (as asyncio's default);
# buffering is bounded by QUIC flow control, not by pausing a transport.
STREAM_READER_LIMIT = 1 << 16
# After an active migration the old socket still listens this long (seconds)
# for packets the server sent before it saw the new path.
OLD_SOCKET_GRACE = 3.0


class StreamResetError(ConnectionResetError):
    """The peer reset the stream (RESET_STREAM) or asked us to stop (STOP_SENDING)."""

    def __init__(self, stream_id: int, error_code: int, what: str = "reset") -> None:
        super().__init__(f"stream {stream_id} {what} by peer with error code {error_code}")
        self.stream_id = stream_id
        self.error_code = error_code


class ConnectionTerminatedError(ConnectionError):
    def __init__(self, event: Any) -> None:
        super().__init__(f"connection terminated: error code {event.error_code} {event.reason_phrase!r}")
        self.error_code = event.error_code
        self.frame_type = event.frame_type
        self.reason_phrase = event.reason_phrase


class Sender:
    """What a protocol transmits through (udp.UdpSocket has these methods)."""

    def send(self, data: Any, addr: NetworkAddress, ecn: int = 0) -> None: ...
    def send_batch(self, data: Any, segment_size: int, addr: NetworkAddress, ecn: int = 0) -> None: ...
    def send_datagrams(self, datagrams: list, addr: NetworkAddress, ecn: int = 0) -> None: ...
    def is_writable(self) -> bool: ...


class QuicConnectionProtocol:
    """Drives one QuicConnection on the event loop (see the module header).
    Subclass and override quic_event_received() to handle raw events, as
    with aioquic; the default turns streams into StreamReader/StreamWriter."""

    def __init__(self, quic: Any, stream_handler: Optional[QuicStreamHandler] = None) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._quic = quic
        self._sender: Optional[Sender] = None
        self._closed = asyncio.Event()
        self._connected = False
        self._connected_waiter: Optional[asyncio.Future] = None
        self._terminated: Optional[Any] = None  # the ConnectionTerminated event
        self._ping_waiters: dict[int, asyncio.Future] = {}
        self._stream_pairs: dict[int, _Stream] = {}
        self._write_paused: dict[int, _Stream] = {}  # streams whose writers wait in drain()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._keepalive: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[float] = None
        self._transmit_task: Optional[asyncio.Handle] = None
        self._sender_paused = False
        self._stream_handler = stream_handler or (lambda r, w: None)
        self._tasks: set[asyncio.Task] = set()
        self._fed_reader = False  # the last StreamDataReceived went into a StreamReader
        self._peer_stream_max = [-1, -1, -1, -1]  # highest peer stream ID seen, by its two low bits
        # Optional core features, looked up once.
        # (buffer, segment_size, addr, local) batches where the core knows local addresses
        self._path_batches = getattr(quic, "path_datagram_batches", None)
        self._batches = getattr(quic, "datagram_batches_to_send", None)
        self._ecn = hasattr(quic, "ecn_codepoint")  # our core takes and gives ECN codepoints
        self._consume = _find_consume(quic)
        self._send_buffered = _find_send_buffered(quic)
        # Callbacks (aioquic's names) for servers that route by connection ID.
        self._connection_id_issued_handler: Callable[[bytes], None] = lambda cid: None
        self._connection_id_retired_handler: Callable[[bytes], None] = lambda cid: None
        self._connection_terminated_handler: Callable[[], None] = lambda: None
        # connect() sets it: a new socket to migrate to (change_local_address).
        self._new_socket: Optional[Callable[..., Any]] = None
        self._path_waiter: Optional[asyncio.Future] = None

    # -- wiring (client.py / server.py) ---------------------------------------------

    def connection_made(self, sender: Sender) -> None:
        self._sender = sender

    @property
    def quic(self) -> Any:
        return self._quic

    # -- public API (aioquic's) -------------------------------------------------------

    def connect(self, addr: NetworkAddress, transmit: bool = True) -> None:
        """Start the handshake (clients, once)."""
        self._quic.connect(addr, now=self._loop.time())
        if transmit:
            self.transmit()

    @property
    def local_address(self) -> Any:
        """The address of the socket the connection sends from (None: unknown)."""
        getsockname = getattr(self._sender, "getsockname", None)
        return getsockname() if getsockname is not None else None

    async def change_local_address(self, local_host: Optional[str] = None, local_port: int = 0) -> Any:
        """Client: move the connection to a new local address -- a new socket
        -- while it runs (active migration, RFC 9000 §9.2: a fresh connection
        ID, congestion state afresh, the path validated).  Returns the new
        local address once the server answered on it.  If the path fails
        validation, raises ConnectionError and the connection goes back to
        its old socket.  The old socket keeps listening for a moment, for
        packets already on their way to it."""
        if self._new_socket is None or self._sender is None:
            raise UsageError("change_local_address() is for connections made by connect()")
        old = self._sender
        new = self._new_socket(local_host, local_port)
        try:
            self._quic.change_path(self._loop.time())
        except BaseException:
            new.close()
            raise
        waiter = self._path_waiter = self._loop.create_future()
        self._sender = new
        self.transmit()
        try:
            await waiter
        except ConnectionError:
            self._sender = old
            new.close()
            self.transmit()
            raise
        finally:
            self._path_waiter = None
        self._loop.call_later(OLD_SOCKET_GRACE, old.close)
        return new.getsockname()

    async def wait_connected(self) -> None:
        """Wait for the handshake to complete (ConnectionError if it fails)."""
        if self._connected:
            return
        if self._terminated is not None:
            raise ConnectionTerminatedError(self._terminated)
        if self._connected_waiter is None:
            self._connected_waiter = self._loop.create_future()
        await asyncio.shield(self._connected_waiter)

    async def create_stream(self, is_unidirectional: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        stream_id = self._quic.get_next_available_stream_id(is_unidirectional=is_unidirectional)
        # The core hands out the next ID without reserving it (as aioquic
        # does): an empty write opens the stream, so a second create_stream()
        # before any data gets the following ID, not the same one.
        self._quic.send_stream_data(stream_id, b"")
        stream = self._stream(stream_id)
        return stream.reader, stream.writer

    def close(self, error_code: int = 0, reason_phrase: str = "") -> None:
        """Close the connection (CONNECTION_CLOSE); wait_closed() waits for the end."""
        if self._terminated is None:
            self._quic.close(error_code=error_code, reason_phrase=reason_phrase)
            self.transmit()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def ping(self) -> None:
        waiter = self._loop.create_future()
        uid = id(waiter)
        self._ping_waiters[uid] = waiter
        self._quic.send_ping(uid)
        self.transmit()
        await asyncio.shield(waiter)

    def keep_alive(self, interval: Optional[float]) -> None:
        """Send a PING every ``interval`` seconds while the connection lives
        (None stops it): an idle connection then outlives the peer's idle
        timeout and the NAT bindings on its path."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if interval is not None and self._terminated is None:
            if not interval > 0:
                raise ValueError("keep_alive interval must be positive")

            def tick() -> None:
                self._keepalive = None
                if self._terminated is None:
                    try:
                        self._quic.send_ping(0)
                    except UsageError:
                        return  # closing: nothing left to keep alive
                    self.transmit()
                    self._keepalive = self._loop.call_later(interval, tick)

            self._keepalive = self._loop.call_later(interval, tick)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._quic.reset_stream(stream_id, error_code)
        self._transmit_soon()

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        (getattr(self._quic, "stop_sending", None) or self._quic.stop_stream)(stream_id, error_code)
        self._transmit_soon()

    def change_connection_id(self) -> bool:
        """Move to the peer's next connection ID (False: it gave no spare yet)."""
        moved = self._quic.change_connection_id()
        self.transmit()
        return bool(moved)

    def request_key_update(self) -> None:
        self._quic.request_key_update()
        self.transmit()

    def quic_event_received(self, event: Any) -> None:
        """Override to see every event; the default feeds the stream readers.
        (An override that handles StreamDataReceived itself, without calling
        this, gets the data's flow-control credit returned on delivery.)"""
        if isinstance(event, events.StreamDataReceived):
            stream = self._stream_pairs.get(event.stream_id) or self._peer_stream(event.stream_id)
            if stream is not None:
                self._fed_reader = stream.on_data(event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            stream = self._stream_pairs.get(event.stream_id) or self._peer_stream(event.stream_id)
            if stream is not None:
                stream.on_reset(event.error_code)
        elif isinstance(event, events.StopSendingReceived):
            stream = self._stream_pairs.get(event.stream_id)
            if stream is not None:
                stream.on_stop_sending(event.error_code)
                self._write_paused.pop(event.stream_id, None)

    def transmit(self) -> None:
        """Send what the core has, then (re-)arm the timer."""
        self._transmit_task = None
        try:
            self._transmit()
        except Exception as exc:
            self._internal_error(exc)

    def _transmit(self) -> None:
        sender = self._sender
        if sender is None:
            return
        quic = self._quic
        now = self._loop.time()
        if not self._sender_paused:
            if self._path_batches is not None:
                batches = self._path_batches(now)
                ecn = quic.ecn_codepoint if self._ecn else 0  # what the core built them as (RFC 9000 §13.4)
                for data, segment_size, addr, local in batches:
                    if local is None:
                        sender.send_batch(data, segment_size, addr, ecn)
                    else:  # a server's other address (its preferred address): that socket
                        sender.send_batch(data, segment_size, addr, ecn, local)
            elif self._batches is not None:
                for data, segment_size, addr in self._batches(now):
                    sender.send_batch(data, segment_size, addr)
            else:
                pending: list = []
                last_addr = None
                for data, addr in quic.datagrams_to_send(now=now):
                    if addr != last_addr and pending:
                        sender.send_datagrams(pending, last_addr)
                        pending = []
                    pending.append(data)
                    last_addr = addr
                if pending:
                    sender.send_datagrams(pending, last_addr)
        if self._write_paused:
            self._check_writers()
        self._arm_timer(quic.get_timer())

    # -- from the socket (udp.DatagramReceiver) -----------------------------------------------

    def datagram_received(self, data: Any, addr: NetworkAddress, ecn: int = 0) -> None:
        # The socket lends a view of its reused buffer; the core gets bytes
        # (it uses slices as dict keys and may keep packets until their keys
        # arrive).  One ~1.2 KB copy is small next to decrypting the packet.
        try:
            if self._ecn:
                self._quic.receive_datagram(bytes(data), addr, now=self._loop.time(), ecn=ecn)
            else:
                self._quic.receive_datagram(bytes(data), addr, now=self._loop.time())
        except Exception as exc:
            self._internal_error(exc)

    def datagram_batch_received(self, data: Any, segment_size: int, addr: NetworkAddress, ecn: int = 0) -> None:
        """A GRO batch (see UdpSocket): one copy, one call into the core."""
        quic = self._quic
        batch = getattr(quic, "receive_datagrams", None)
        try:
            if batch is not None and self._ecn:
                batch(bytes(data), segment_size, addr, now=self._loop.time(), ecn=ecn)
            elif batch is not None:
                batch(bytes(data), segment_size, addr, now=self._loop.time())
            else:  # a core without the batch call
                now = self._loop.time()
                for start in range(0, len(data), segment_size):
                    quic.receive_datagram(bytes(data[start : start + segment_size]), addr, now=now)
        except Exception as exc:
            self._internal_error(exc)

    def datagrams_done(self) -> None:
        try:
            self._process_events()
        except Exception as exc:
            self._internal_error(exc)
        self.transmit()

    def pause_writing(self) -> None:
        self._sender_paused = True

    def resume_writing(self) -> None:
        self._sender_paused = False
        self.transmit()

    # -- timer ------------------------------------------------------------------------------

    def _arm_timer(self, timer_at: Optional[float]) -> None:
        if timer_at is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = None
            return
        if self._timer is not None:
            if timer_at >= self._timer_at:  # type: ignore[operator]
                return  # fires early, finds nothing due, re-arms (cheaper than re-arming now)
            self._timer.cancel()
        self._timer_at = timer_at
        self._timer = self._loop.call_at(timer_at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        due = self._quic.get_timer()
        if due is None:
            return
        now = self._loop.time()
        # The deadline moved later since we armed (lazy re-arming): wait more.
        # asyncio fires at most one clock resolution (1 ns) early, so `now` is
        # the real time: never hand the core a future `now` (at loopback RTTs
        # of ~100 us, a skewed clock would spoil RTT samples).
        if due > now + 1e-6:
            self._arm_timer(due)
            return
        try:
            self._quic.handle_timer(now=max(now, due))
            self._process_events()
        except Exception as exc:
            self._internal_error(exc)
        self.transmit()

    def _internal_error(self, exc: Exception) -> None:
        """A bug (in the core or in an event handler) escaped: log it and end
        the connection loudly -- readers, writers and waiters fail with
        INTERNAL_ERROR -- instead of leaving it to stall until the idle timeout."""
        logger.error("pyquic connection failed: %r", exc, exc_info=exc)
        if self._terminated is not None:
            return
        try:
            self._quic.close(error_code=INTERNAL_ERROR, frame_type=0, reason_phrase=f"{type(exc).__name__}")
            self._transmit()
        except Exception:
            pass
        self._on_terminated(events.ConnectionTerminated(
            error_code=INTERNAL_ERROR, frame_type=0, reason_phrase=f"internal error: {exc!r}"))

    # -- events -------------------------------------------------------------------------------

    def _process_events(self) -> None:
        quic = self._quic
        event = quic.next_event()
        while event is not None:
            if isinstance(event, events.ConnectionIdIssued):
                self._connection_id_issued_handler(event.connection_id)
            elif isinstance(event, events.ConnectionIdRetired):
                self._connection_id_retired_handler(event.connection_id)
            elif isinstance(event, events.HandshakeCompleted):
                self._connected = True
                waiter = self._connected_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, events.PingAcknowledged):
                waiter = self._ping_waiters.pop(event.uid, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, events.ConnectionTerminated):
                self._on_terminated(event)
            elif isinstance(event, (events.PathValidated, events.PathValidationFailed)):
                waiter = self._path_waiter
                if waiter is not None and not waiter.done():
                    if isinstance(event, events.PathValidated):
                        waiter.set_result(event.addr)
                    else:
                        waiter.set_exception(ConnectionError("the new path failed validation"))
            elif isinstance(event, events.StreamDataReceived) and self._consume is not None:
                # A StreamReader returns credit as the application reads it;
                # data that went anywhere else is consumed now, so raw event
                # handlers written for aioquic do not stall flow control.
                self._fed_reader = False
                self.quic_event_received(event)
                if not self._fed_reader and event.data:
                    self._consume(event.stream_id, len(event.data))
                event = quic.next_event()
                continue
            self.quic_event_received(event)
            event = quic.next_event()

    def _on_terminated(self, event: Any) -> None:
        self._terminated = event
        exc = ConnectionTerminatedError(event)
        waiter = self._connected_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        for waiter in [*self._ping_waiters.values(), self._path_waiter]:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
        self._ping_waiters.clear()
        for stream in self._stream_pairs.values():
            stream.on_connection_lost(exc)
        self._write_paused.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.keep_alive(None)
        self._connection_terminated_handler()
        self._closed.set()

    # -- streams -------------------------------------------------------------------------------

    def _stream(self, stream_id: int) -> "_Stream":
        stream = _Stream(self, stream_id)
        self._stream_pairs[stream_id] = stream
        return stream

    def _peer_stream(self, stream_id: int) -> Optional["_Stream"]:
        """A stream the peer just opened: reader/writer + the stream handler.
        Opening stream N implicitly opens the peer's lower-numbered streams of
        its type (RFC 9000 §3.2), so they get their handlers now, in order;
        their data may come later.  None for our own streams and for peer
        streams already finished and forgotten (a late event must not start
        a second handler)."""
        kind = stream_id & 3
        if (kind & 1) == (0 if self._quic.configuration.is_client else 1):
            return None
        highest = self._peer_stream_max[kind]
        if stream_id <= highest:
            return None
        self._peer_stream_max[kind] = stream_id
        # Bounded by our MAX_STREAMS: the core rejects IDs beyond it.
        for lower in range(highest + 4 if highest >= 0 else kind, stream_id, 4):
            self._start_handler(self._stream(lower))
        stream = self._stream(stream_id)
        self._start_handler(stream)
        return stream

    def _start_handler(self, stream: "_Stream") -> None:
        result = self._stream_handler(stream.reader, stream.writer)
        if asyncio.iscoroutine(result):
            task = self._loop.create_task(result)
            self._tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("stream handler failed: %r", exc, exc_info=exc)

    def _forget(self, stream_id: int) -> None:
        self._stream_pairs.pop(stream_id, None)
        self._write_paused.pop(stream_id, None)

    def _check_writers(self) -> None:
        for stream_id, stream in list(self._write_paused.items()):
            if self._send_buffered(stream_id) <= STREAM_WRITE_LOW:
                del self._write_paused[stream_id]
                stream.resume_writing()

    def _transmit_soon(self) -> None:
        if self._transmit_task is None:
            self._transmit_task = self._loop.call_soon(self.transmit)


# --- streams as asyncio StreamReader/StreamWriter ---------------------------------------------


class _Stream:
    """Binds one QUIC stream to a reader, a writer and their small protocol."""

    __slots__ = ("proto", "stream_id", "reader", "writer", "adapter", "flow", "recv_done", "send_done")

    def __init__(self, proto: QuicConnectionProtocol, stream_id: int) -> None:
        self.proto = proto
        self.stream_id = stream_id
        loop = proto._loop
        is_uni = bool(stream_id & 2)
        ours = (stream_id & 1) == (0 if proto._quic.configuration.is_client else 1)
        can_send = not is_uni or ours
        can_recv = not is_uni or not ours
        self.reader = _QuicStreamReader(self, limit=STREAM_READER_LIMIT, loop=loop)
        self.adapter = QuicStreamAdapter(self)
        self.flow = _StreamFlow(self, loop)
        self.writer = asyncio.StreamWriter(self.adapter, self.flow, self.reader, loop)
        self.recv_done = not can_recv
        self.send_done = not can_send
        if not can_recv:
            self.reader.feed_eof()
        if not can_send:
            self.adapter._closing = True

    # from the core
    def on_data(self, data: bytes, end: bool) -> bool:
        """Feed the reader; True when it took the data (and will consume it as read)."""
        reader = self.reader
        if reader._eof or reader.exception() is not None:
            return False
        if data:
            reader.feed_data(data)
        if end:
            reader.feed_eof()
            self._recv_finished()
        return True

    def on_reset(self, error_code: int) -> None:
        if not self.reader._eof:
            self.reader.set_exception(StreamResetError(self.stream_id, error_code))
        self._recv_finished()

    def on_stop_sending(self, error_code: int) -> None:
        exc = StreamResetError(self.stream_id, error_code, "stopped")
        self.adapter._error = exc
        self.adapter._closing = True
        self.flow.fail_writers(exc)
        self._send_finished()

    def on_connection_lost(self, exc: Exception) -> None:
        if not self.reader._eof and self.reader.exception() is None:
            self.reader.set_exception(exc)
        if self.adapter._error is None:
            self.adapter._error = exc
        self.flow.connection_lost(exc)

    def _recv_finished(self) -> None:
        self.recv_done = True
        if self.send_done:
            self.proto._forget(self.stream_id)

    def _send_finished(self) -> None:
        self.send_done = True
        self.flow.close_done()
        if self.recv_done:
            self.proto._forget(self.stream_id)

    def resume_writing(self) -> None:
        if self.flow._paused:
            self.flow.resume_writing()


class _QuicStreamReader(asyncio.StreamReader):
    """A StreamReader that hands flow-control credit back as the app reads.

    Every StreamReader read method ends in _maybe_resume_transport(); what
    left the buffer since the last call is what the application consumed.
    """

    def __init__(self, stream: _Stream, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self._qstream = stream
        self._fed = 0
        self._credited = 0

    def feed_data(self, data: bytes) -> None:
        self._fed += len(data)
        super().feed_data(data)

    def _maybe_resume_transport(self) -> None:
        self._credit(self._fed - len(self._buffer) - self._credited)

    async def _wait_for_data(self, func_name: str) -> None:
        # readexactly(n) and readuntil() wait here, with bytes still buffered,
        # when they need more than the buffer holds: credit those bytes now
        # (asyncio resumes a paused transport at this point for the same
        # reason), or a read larger than the flow-control window -- an 8 MB
        # SMB READ response, say -- would wait forever.  The buffer is then
        # bounded by what the application asked for plus one window.
        self._credit(self._fed - self._credited)
        await super()._wait_for_data(func_name)

    def _credit(self, taken: int) -> None:
        if taken > 0:
            self._credited += taken
            proto = self._qstream.proto
            if proto._consume is not None and proto._terminated is None:
                proto._consume(self._qstream.stream_id, taken)
                proto._transmit_soon()  # MAX_STREAM_DATA / MAX_DATA may be due


class _StreamFlow(FlowControlMixin):
    """The 'protocol' a StreamWriter waits on: drain() and wait_closed()."""

    def __init__(self, stream: _Stream, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._stream = stream
        self._close_waiter: asyncio.Future = loop.create_future()

    def fail_writers(self, exc: Exception) -> None:
        # STOP_SENDING: wake drain() with the error; the reader stays usable.
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        self._paused = False

    def close_done(self) -> None:
        if not self._close_waiter.done():
            self._close_waiter.set_result(None)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        super().connection_lost(exc)
        if not self._close_waiter.done():
            self._close_waiter.set_result(None)

    def _get_close_waiter(self, stream: Any) -> asyncio.Future:
        return self._close_waiter


class QuicStreamAdapter(asyncio.Transport):
    """The transport behind a StreamWriter: writes go to the core's stream."""

    def __init__(self, stream: _Stream) -> None:
        super().__init__()
        self._stream = stream
        self.stream_id = stream.stream_id
        self._closing = False
        self._error: Optional[Exception] = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "stream_id":
            return self.stream_id
        if name == "connection":
            return self._stream.proto
        return default

    def write(self, data: Any) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise ConnectionResetError(f"stream {self.stream_id} is closed for writing")
        if not data:
            return
        if type(data) is not bytes and not (isinstance(data, memoryview) and data.readonly):
            # The core keeps large writes without copying; a caller's bytearray
            # may be reused the moment write() returns.
            data = bytes(data)
        proto = self._stream.proto
        proto._quic.send_stream_data(self.stream_id, data)
        proto._transmit_soon()
        flow = self._stream.flow
        if not flow._paused and proto._send_buffered(self.stream_id) > STREAM_WRITE_HIGH:
            flow.pause_writing()
            proto._write_paused[self.stream_id] = self._stream

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing:
            return
        self._closing = True
        proto = self._stream.proto
        if proto._terminated is None:
            proto._quic.send_stream_data(self.stream_id, b"", end_stream=True)
            proto._transmit_soon()
        # wait_closed() returns once the FIN is queued: the core retransmits it.
        self._stream._send_finished()

    def close(self) -> None:
        self.write_eof()

    def is_closing(self) -> bool:
        return self._closing

    def abort(self, error_code: int = 0) -> None:
        """Reset the sending side (RESET_STREAM) instead of finishing it."""
        if self._closing:
            return
        self._closing = True
        self._stream.proto.reset_stream(self.stream_id, error_code)
        self._stream._send_finished()

    def get_write_buffer_size(self) -> int:
        return self._stream.proto._send_buffered(self.stream_id)


# --- optional core features ---------------------------------------------------------------------


def _find_consume(quic: Any) -> Optional[Callable[[int, int], None]]:
    """The core's 'application consumed n bytes' call, if it runs without auto_consume."""
    consume = getattr(quic, "consume", None) or getattr(quic, "consume_stream_data", None)
    if consume is None:
        return None
    if getattr(quic, "auto_consume", False):
        return None
    return consume


def _find_send_buffered(quic: Any) -> Callable[[int], int]:
    fn = getattr(quic, "stream_send_buffered", None) or getattr(quic, "send_buffered", None)
    if fn is not None:
        return fn
    return lambda stream_id: 0
