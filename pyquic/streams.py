# QUIC streams (RFC 9000 §2, §3): stream ID rules, the receive state
# machine, and the StreamManager that owns every stream of one connection.
# Owns:
#   RecvStream    - the receiving part: reassembly (assembler.py), final size
#                   rules (§4.5), RESET_STREAM received, STOP_SENDING sent;
#                   its out-of-order chunks are charged to the connection's
#                   one ReassemblyBudget (§21.7: what tiny scattered pieces
#                   cost beyond the bytes flow control counts);
#   StreamManager - which stream IDs exist and may exist, opening local
#                   streams within the peer's MAX_STREAMS, creating peer
#                   streams on their first frame, the frames of §19.4-§19.14
#                   in and out (as frames.py tuples), discarding finished
#                   streams and raising MAX_STREAMS for the peer
#                   (flow_control.py); the round-robin choice of the stream
#                   that sends next is stream_scheduler.py's;
#   emitting the stream events (StreamDataReceived, StreamReset,
#   StopSendingReceived), which are defined in events.py.
# The sending part (SendStream) lives in send_stream.py.
# Time comes in as an argument; nothing here does I/O.  Work is per range or
# per chunk, never per byte.
from __future__ import annotations

from enum import IntEnum
from typing import Optional, Union

from .assembler import Assembler, ReassemblyBudget
from .errors import TransportError, UsageError
from .flow_control import LocalStreamLimit, PeerStreamLimit, RecvCredit, SendCredit
from .frames import (
    DataBlocked,
    FrameType,
    MaxData,
    MaxStreamData,
    MaxStreams,
    ResetStream,
    StopSending,
    Stream,
    StreamDataBlocked,
    StreamsBlocked,
)
from .events import StopSendingReceived, StreamDataReceived, StreamEvent, StreamReset  # noqa: F401 (re-exported)
from .send_stream import SendState, SendStream  # noqa: F401 (re-exported)
from . import stream_scheduler


BytesLike = Union[bytes, bytearray, memoryview]

# Per receiving stream, at most this many out-of-order chunks are held
# (assembler.py joins contiguous ones when it is reached; more than half of
# it in separate pieces is PROTOCOL_VIOLATION).
MAX_STREAM_CHUNKS = 2048
# Per connection, the estimated memory that out-of-order chunks of all
# streams together may cost beyond their payload bytes (assembler.py,
# CHUNK_OVERHEAD: 112 B a chunk, so ~37,000 separate chunks); past it,
# PROTOCOL_VIOLATION.  Full-sized frames filling the largest default
# connection window (16 MiB, config.py) out of order cost ~1.7 MB of it.
DEFAULT_MAX_REASSEMBLY_OVERHEAD = 4 * 1048576
MAX_ERROR_CODE = (1 << 62) - 1


def stream_is_unidirectional(stream_id: int) -> bool:
    """RFC 9000 §2.1: the second least significant bit marks unidirectional streams."""
    return bool(stream_id & 2)


def stream_is_client_initiated(stream_id: int) -> bool:
    """RFC 9000 §2.1: the least significant bit is 0 for client-initiated streams."""
    return not stream_id & 1


# --- events: defined in events.py (one events module), re-exported here ---------


# --- the receiving part -------------------------------------------------------------


class RecvState(IntEnum):
    """RFC 9000 §3.2, Figure 3."""

    RECV = 0
    SIZE_KNOWN = 1
    DATA_RECVD = 2
    DATA_READ = 3
    RESET_RECVD = 4
    RESET_READ = 5


def _fragmentation_error(reason: str) -> TransportError:
    return TransportError.PROTOCOL_VIOLATION(reason, frame_type=FrameType.STREAM)


class RecvStream:
    """The receiving part of a stream.  Data is handed out as soon as it is
    contiguous, so Data Recvd becomes Data Read (and Reset Recvd becomes
    Reset Read) within the call that got there."""

    __slots__ = ("stream_id", "state", "credit", "final_size", "stop_error_code", "stop_pending", "_assembler")

    def __init__(
        self,
        stream_id: int,
        window: int,
        max_window: Optional[int] = None,
        budget: Optional[ReassemblyBudget] = None,
    ) -> None:
        self.stream_id = stream_id
        self.state = RecvState.RECV
        self.credit = RecvCredit(window, max_window)  # received = highest offset seen
        self.final_size: Optional[int] = None
        self.stop_error_code: Optional[int] = None
        self.stop_pending = False
        # Flow control keeps data within max_window of what was read; the cap
        # here is a second guard.
        self._assembler = Assembler(
            max_buffered=self.credit.max_window,
            max_chunks=MAX_STREAM_CHUNKS,
            error=_fragmentation_error,
            budget=budget,
        )

    @property
    def is_terminal(self) -> bool:
        return self.state in (RecvState.DATA_READ, RecvState.RESET_READ)

    @property
    def read_offset(self) -> int:
        return self._assembler.read_offset

    @property
    def held_overhead(self) -> int:
        """What the out-of-order chunks held cost beyond their bytes (assembler.py)."""
        return self._assembler.overhead

    def join_chunks(self) -> None:
        """Join contiguous out-of-order chunks (the budget is running low)."""
        self._assembler.join_runs()

    def release(self) -> None:
        """Drop whatever is still held (the stream is being forgotten)."""
        self._assembler.clear()

    def _check_final_size(self, end: int, fin: bool, frame_type: int) -> None:
        # RFC 9000 §4.5: once known, the final size cannot change, no data may
        # lie beyond it, and it cannot be below data already received.
        final_size = self.final_size
        if final_size is not None:
            if end > final_size:
                raise TransportError.FINAL_SIZE_ERROR(
                    f"stream {self.stream_id}: data up to {end} beyond the final size {final_size}",
                    frame_type=frame_type,
                )
            if fin and end != final_size:
                raise TransportError.FINAL_SIZE_ERROR(
                    f"stream {self.stream_id}: final size changed from {final_size} to {end}", frame_type=frame_type
                )
        elif fin and end < self.credit.received:
            raise TransportError.FINAL_SIZE_ERROR(
                f"stream {self.stream_id}: final size {end} below data received up to {self.credit.received}",
                frame_type=frame_type,
            )

    def on_stream_frame(
        self, offset: int, data: BytesLike, fin: bool, connection: RecvCredit, frame_type: int = FrameType.STREAM
    ) -> Optional[tuple[BytesLike, bool]]:
        """A STREAM frame arrived; returns (data, end_stream) to deliver, or None."""
        end = offset + len(data)
        if fin or self.final_size is not None:  # nothing to check otherwise
            self._check_final_size(end, fin, frame_type)
        # RFC 9000 §4.1: stream then connection limits; the connection counts
        # each stream's highest offset (§4.5).
        credit = self.credit
        added = credit.on_received(end, frame_type) if end > credit.received else 0
        if added:
            connection.on_received(connection.received + added, frame_type)
        if fin and self.final_size is None:
            self.final_size = end
            if self.state == RecvState.RECV:
                self.state = RecvState.SIZE_KNOWN
        if self.state > RecvState.SIZE_KNOWN:
            return None  # read to the end, or reset: nothing more to deliver
        assembler = self._assembler
        chunk = assembler.add_and_read(offset, data)
        end_stream = self.final_size is not None and assembler.read_offset == self.final_size
        if end_stream:
            self.state = RecvState.DATA_READ  # via Data Recvd: delivered in this call
        elif not chunk:
            return None
        return chunk, end_stream

    def on_reset(self, final_size: int, connection: RecvCredit, frame_type: int = FrameType.RESET_STREAM) -> bool:
        """RESET_STREAM arrived; True when the application must hear of it."""
        self._check_final_size(final_size, True, frame_type)
        added = self.credit.on_received(final_size, frame_type) if final_size > self.credit.received else 0
        if added:
            connection.on_received(connection.received + added, frame_type)
        self.final_size = final_size
        if self.state > RecvState.SIZE_KNOWN:
            return False  # RFC 9000 §3.2: after Data Recvd (or a first reset) it changes nothing
        self.state = RecvState.RESET_READ  # via Reset Recvd: reported in this call
        self._assembler.clear()
        return True

    def stop(self, error_code: int) -> bool:
        """Ask the peer to stop sending (RFC 9000 §3.5: only in Recv or Size Known)."""
        if self.state > RecvState.SIZE_KNOWN or self.stop_error_code is not None:
            return False
        self.stop_error_code = error_code
        self.stop_pending = True
        return True

    def take_stop(self) -> Optional[int]:
        if not self.stop_pending or self.stop_error_code is None:
            return None
        self.stop_pending = False
        if self.state > RecvState.SIZE_KNOWN:
            return None  # everything arrived meanwhile: no need to ask
        return self.stop_error_code

    def on_stop_lost(self) -> None:
        if self.state <= RecvState.SIZE_KNOWN and self.stop_error_code is not None:
            self.stop_pending = True


class QuicStream:
    """One stream: a sending part, a receiving part, or both."""

    __slots__ = ("stream_id", "send", "recv")

    def __init__(self, stream_id: int, send: Optional[SendStream], recv: Optional[RecvStream]) -> None:
        self.stream_id = stream_id
        self.send = send
        self.recv = recv


# --- the manager ------------------------------------------------------------------


class StreamManager:
    """Every stream of one connection, and the stream and connection flow control.

    Our limits (what we advertise in transport parameters) come in as
    keyword arguments named as the parameters; the peer's arrive with
    ``on_peer_transport_parameters``.  ``max_data_window`` and
    ``max_stream_data_window`` let the receive windows grow (auto-tuning)
    up to that size.  With ``auto_consume`` (the default), data counts as
    consumed -- and its credit returns to the peer -- once it is delivered
    in an event; without it, the application calls ``consume``.

    Frames in: ``handle_frame(frame)`` (or the handle_* method for its type)
    returns the event to deliver, or None; peer violations raise
    TransportError.  Frames out: ``take_control_frames(now, rtt)`` and
    ``next_stream_frame(max_frame_size)``; whatever was taken is reported
    back with ``on_frame_acked`` / ``on_frame_lost`` (a frame that did not
    fit in the packet after all is "lost").
    """

    def __init__(
        self,
        is_client: bool,
        *,
        initial_max_data: int,
        initial_max_stream_data_bidi_local: int,
        initial_max_stream_data_bidi_remote: int,
        initial_max_stream_data_uni: int,
        initial_max_streams_bidi: int,
        initial_max_streams_uni: int,
        max_data_window: Optional[int] = None,
        max_stream_data_window: Optional[int] = None,
        auto_consume: bool = True,
        max_reassembly_overhead: int = DEFAULT_MAX_REASSEMBLY_OVERHEAD,
    ) -> None:
        self.is_client = is_client
        self.auto_consume = auto_consume
        self._local_bit = 0 if is_client else 1
        # Receive windows for new streams: (local bidi, peer bidi, peer uni).
        self._window_local_bidi = initial_max_stream_data_bidi_local
        self._window_peer_bidi = initial_max_stream_data_bidi_remote
        self._window_peer_uni = initial_max_stream_data_uni
        self._max_stream_window = max_stream_data_window
        # The peer's limits on what we send (0 until its transport parameters).
        self._peer_bidi_local = 0  # for streams the peer opens
        self._peer_bidi_remote = 0  # for streams we open
        self._peer_uni = 0
        self.recv_data = RecvCredit(initial_max_data, max_data_window)
        # Shared by every receiving stream's assembler (RFC 9000 §21.7).
        self.reassembly = ReassemblyBudget(
            max_reassembly_overhead, error=_fragmentation_error, relieve=self._join_held_chunks
        )
        self.send_data = SendCredit(0)
        # Indexed by "is unidirectional".
        self.peer_streams = (PeerStreamLimit(initial_max_streams_bidi), PeerStreamLimit(initial_max_streams_uni))
        self.local_streams = (LocalStreamLimit(0), LocalStreamLimit(0))
        self.streams: dict[int, QuicStream] = {}
        # Ordered sets (dicts) of stream IDs with something to send.
        self._send_queue: dict[int, None] = {}  # data, FIN or retransmission; round-robin order
        self._pending_resets: dict[int, None] = {}
        self._pending_stops: dict[int, None] = {}
        self._credit_updates: dict[int, None] = {}  # MAX_STREAM_DATA may be due
        self._blocked_streams: dict[int, None] = {}  # STREAM_DATA_BLOCKED may be due
        self._connection_blocked = False  # DATA_BLOCKED may be due

    # -- set-up ----------------------------------------------------------------------

    def on_peer_transport_parameters(self, params: object) -> None:
        """Apply the peer's initial_max_* transport parameters (any object with those attributes)."""
        self._peer_bidi_local = params.initial_max_stream_data_bidi_local  # type: ignore[attr-defined]
        self._peer_bidi_remote = params.initial_max_stream_data_bidi_remote  # type: ignore[attr-defined]
        self._peer_uni = params.initial_max_stream_data_uni  # type: ignore[attr-defined]
        self.send_data.on_max(params.initial_max_data)  # type: ignore[attr-defined]
        self.local_streams[0].on_max_streams(params.initial_max_streams_bidi)  # type: ignore[attr-defined]
        self.local_streams[1].on_max_streams(params.initial_max_streams_uni)  # type: ignore[attr-defined]
        for stream_id, stream in self.streams.items():
            if stream.send is not None:
                stream.send.credit.on_max(self._initial_send_limit(stream_id))

    def drop_buffers(self) -> None:
        """The connection is closing or draining (RFC 9000 §10.2): no stream
        data will be delivered, sent or resent any more, so what the
        streams hold (out-of-order chunks, unacknowledged data) goes now
        rather than when the connection object is dropped."""
        for stream in self.streams.values():
            if stream.recv is not None:
                stream.recv.release()
            if stream.send is not None:
                stream.send.drop_buffered()
        self._send_queue.clear()

    def replace_peer_limits(self, params: object) -> None:
        """The peer refused our 0-RTT (RFC 9001 §4.6.2): its new transport
        parameters replace the limits remembered from the ticket, lower ones
        included (RFC 9000 §7.4.1 only binds a server that accepts 0-RTT)."""
        self.send_data.limit = params.initial_max_data  # type: ignore[attr-defined]
        self.local_streams[0].limit = params.initial_max_streams_bidi  # type: ignore[attr-defined]
        self.local_streams[1].limit = params.initial_max_streams_uni  # type: ignore[attr-defined]
        self.on_peer_transport_parameters(params)
        for stream_id, stream in self.streams.items():
            if stream.send is not None:
                stream.send.credit.limit = self._initial_send_limit(stream_id)

    def _is_local(self, stream_id: int) -> bool:
        return stream_id & 1 == self._local_bit

    def _initial_send_limit(self, stream_id: int) -> int:
        if stream_id & 2:
            return self._peer_uni
        return self._peer_bidi_remote if self._is_local(stream_id) else self._peer_bidi_local

    def _create(self, stream_id: int) -> QuicStream:
        local = self._is_local(stream_id)
        uni = stream_id & 2
        send = recv = None
        if local or not uni:
            send = SendStream(stream_id, self._initial_send_limit(stream_id))
        if not local or not uni:
            if uni:
                window = self._window_peer_uni
            else:
                window = self._window_local_bidi if local else self._window_peer_bidi
            recv = RecvStream(stream_id, window, self._max_stream_window, self.reassembly)
        stream = self.streams[stream_id] = QuicStream(stream_id, send, recv)
        return stream

    def _usable(self, stream_id: int) -> bool:
        """False for a local stream still beyond the peer's MAX_STREAMS."""
        return not self._is_local(stream_id) or self.local_streams[(stream_id >> 1) & 1].allows(stream_id >> 2)

    # -- the application's calls ---------------------------------------------------------

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The ID the next stream we open gets (RFC 9000 §2.1)."""
        index = self.local_streams[is_unidirectional].opened
        return index << 2 | (2 if is_unidirectional else 0) | self._local_bit

    def can_open_stream(self, is_unidirectional: bool = False) -> bool:
        """Whether a new stream of this type could send at once (within the peer's MAX_STREAMS)."""
        return self.local_streams[is_unidirectional].available > 0

    def _stream_for_app(self, stream_id: int, sending: bool) -> Optional[QuicStream]:
        """The stream the application names, created if it is our next one(s);
        None if it was closed and forgotten."""
        stream = self.streams.get(stream_id)
        uni = bool(stream_id & 2)
        local = self._is_local(stream_id)
        if uni and local != sending:
            raise UsageError(f"stream {stream_id} is {'send' if local else 'receive'}-only")
        if stream is not None:
            return stream
        if not 0 <= stream_id < 1 << 62:
            raise UsageError(f"stream ID out of range: {stream_id}")
        index = stream_id >> 2
        if not local:
            if index < self.peer_streams[uni].opened:
                return None
            raise UsageError(f"stream {stream_id} has not been opened by the peer")
        limits = self.local_streams[uni]
        if index < limits.opened:
            return None
        # Opening a stream implicitly opens the lower-numbered ones of its type (RFC 9000 §3.2).
        while limits.opened <= index:
            stream = self._create(limits.open() << 2 | (stream_id & 3))
        return stream

    def send_stream_data(self, stream_id: int, data: BytesLike, end_stream: bool = False) -> None:
        stream = self._stream_for_app(stream_id, sending=True)
        if stream is None:
            raise UsageError(f"stream {stream_id} is closed")
        send = stream.send
        assert send is not None
        send.write(data, end_stream)
        if send.has_pending:
            self._send_queue[stream_id] = None
            self._note_blocked(stream_id, send)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on the stream with this application error code
        (nothing happens if its sending part is already finished)."""
        if not 0 <= error_code <= MAX_ERROR_CODE:
            raise UsageError(f"error code out of range: {error_code}")
        stream = self._stream_for_app(stream_id, sending=True)
        if stream is not None and stream.send is not None and stream.send.reset(error_code):
            self._send_queue.pop(stream_id, None)
            self._blocked_streams.pop(stream_id, None)
            self._pending_resets[stream_id] = None

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on this stream (STOP_SENDING; nothing
        happens if everything has arrived already)."""
        if not 0 <= error_code <= MAX_ERROR_CODE:
            raise UsageError(f"error code out of range: {error_code}")
        stream = self._stream_for_app(stream_id, sending=False)
        if stream is not None and stream.recv is not None and stream.recv.stop(error_code):
            self._pending_stops[stream_id] = None

    def consume(self, stream_id: int, count: int) -> None:
        """Without auto_consume: the application has taken ``count`` bytes of this stream."""
        if self.auto_consume:
            return
        stream = self.streams.get(stream_id)
        if stream is None or stream.recv is None or stream.recv.state >= RecvState.RESET_RECVD:
            return  # a reset already returned the credit
        recv = stream.recv
        if count < 0 or recv.credit.consumed + count > recv.read_offset:
            raise UsageError(f"stream {stream_id}: consuming {count} bytes more than delivered")
        self._consumed(stream, count)
        self._maybe_discard(stream)

    def _consumed(self, stream: QuicStream, count: int) -> None:
        recv = stream.recv
        assert recv is not None
        credit = recv.credit
        # RecvCredit.on_consumed(), inline: this runs once per STREAM frame received.
        credit.consumed += count
        self.recv_data.consumed += count
        if recv.state == RecvState.RECV and credit.update_due:
            self._credit_updates[stream.stream_id] = None

    # -- frames from the peer -----------------------------------------------------------

    def _stream_for_frame(
        self, stream_id: int, frame_type: int, receiving: bool, sending: bool
    ) -> Optional[QuicStream]:
        """The stream a peer's frame names; None if it is closed and forgotten.

        ``receiving`` / ``sending``: the frame is about our receiving or
        sending part, so it is illegal on a stream without that part.
        """
        uni = stream_id & 2
        local = self._is_local(stream_id)
        if uni:
            if local and receiving:
                # RFC 9000 §19.4, §19.8, §19.13: STREAM, RESET_STREAM or
                # STREAM_DATA_BLOCKED for a send-only stream.
                raise TransportError.STREAM_STATE_ERROR(
                    f"frame for our send-only stream {stream_id}", frame_type=frame_type
                )
            if not local and sending:
                # RFC 9000 §19.5, §19.10: STOP_SENDING or MAX_STREAM_DATA for a receive-only stream.
                raise TransportError.STREAM_STATE_ERROR(
                    f"frame for our receive-only stream {stream_id}", frame_type=frame_type
                )
        stream = self.streams.get(stream_id)
        if stream is not None:
            return stream
        index = stream_id >> 2
        if local:
            if index >= self.local_streams[uni >> 1].opened:
                # RFC 9000 §19.8 etc.: a locally initiated stream not yet created.
                raise TransportError.STREAM_STATE_ERROR(
                    f"frame for our stream {stream_id}, not yet opened", frame_type=frame_type
                )
            return None
        limits = self.peer_streams[uni >> 1]
        if index < limits.opened:
            return None
        first = limits.opened
        limits.open(index, frame_type)  # RFC 9000 §4.6: STREAM_LIMIT_ERROR beyond our limit
        # RFC 9000 §3.2: lower-numbered streams of the same type open with it.
        base = stream_id & 3
        for i in range(first, index + 1):
            stream = self._create(i << 2 | base)
        return stream

    def handle_stream_frame(self, frame: Stream) -> Optional[StreamDataReceived]:
        # A known stream with a receiving part passes every check of
        # _stream_for_frame; the lookup alone keeps the per-packet cost down.
        stream = self.streams.get(frame.stream_id)
        recv = stream.recv if stream is not None else None
        if recv is None:
            stream = self._stream_for_frame(frame.stream_id, FrameType.STREAM, receiving=True, sending=False)
            if stream is None:
                return None
            recv = stream.recv
            assert recv is not None
        result = recv.on_stream_frame(frame.offset, frame.data, frame.fin, self.recv_data)
        if result is None:
            return None
        data, end_stream = result
        if self.auto_consume and data:
            # _consumed(), inline: this runs once per STREAM frame received.
            count = len(data)
            credit = recv.credit
            credit.consumed += count
            self.recv_data.consumed += count
            if recv.state == RecvState.RECV and credit.update_due:
                self._credit_updates[frame.stream_id] = None
        if end_stream:
            self._maybe_discard(stream)
        return StreamDataReceived(frame.stream_id, data if type(data) is bytes else bytes(data), end_stream)

    def handle_reset_stream(self, frame: ResetStream) -> Optional[StreamReset]:
        stream = self._stream_for_frame(frame.stream_id, FrameType.RESET_STREAM, receiving=True, sending=False)
        if stream is None:
            return None
        recv = stream.recv
        assert recv is not None
        if not recv.on_reset(frame.final_size, self.recv_data):
            return None
        # Bytes the application will never consume go back to the connection window.
        self._consumed(stream, frame.final_size - recv.credit.consumed)
        self._credit_updates.pop(frame.stream_id, None)
        self._pending_stops.pop(frame.stream_id, None)
        self._maybe_discard(stream)
        return StreamReset(frame.stream_id, frame.error_code)

    def handle_stop_sending(self, frame: StopSending) -> Optional[StopSendingReceived]:
        stream = self._stream_for_frame(frame.stream_id, FrameType.STOP_SENDING, receiving=False, sending=True)
        if stream is None:
            return None
        assert stream.send is not None
        # RFC 9000 §3.5: answer with RESET_STREAM carrying the peer's code
        # (also from Data Sent, where deferring is merely allowed).
        if not stream.send.reset(frame.error_code):
            return None
        self._send_queue.pop(frame.stream_id, None)
        self._blocked_streams.pop(frame.stream_id, None)
        self._pending_resets[frame.stream_id] = None
        return StopSendingReceived(frame.stream_id, frame.error_code)

    def handle_max_data(self, frame: MaxData) -> None:
        self.send_data.on_max(frame.maximum)

    def handle_max_stream_data(self, frame: MaxStreamData) -> None:
        stream = self._stream_for_frame(frame.stream_id, FrameType.MAX_STREAM_DATA, receiving=False, sending=True)
        if stream is not None and stream.send is not None:
            stream.send.credit.on_max(frame.maximum)

    def handle_max_streams(self, frame: MaxStreams) -> None:
        frame_type = FrameType.MAX_STREAMS_BIDI if frame.bidi else FrameType.MAX_STREAMS_UNI
        self.local_streams[not frame.bidi].on_max_streams(frame.maximum, frame_type)

    def handle_data_blocked(self, frame: DataBlocked) -> None:
        pass  # informational (RFC 9000 §19.12); our updates do not wait for it

    def handle_stream_data_blocked(self, frame: StreamDataBlocked) -> None:
        # Validates the ID (and may open peer streams, RFC 9000 §3.2); otherwise informational.
        self._stream_for_frame(frame.stream_id, FrameType.STREAM_DATA_BLOCKED, receiving=True, sending=False)

    def handle_streams_blocked(self, frame: StreamsBlocked) -> None:
        frame_type = FrameType.STREAMS_BLOCKED_BIDI if frame.bidi else FrameType.STREAMS_BLOCKED_UNI
        self.peer_streams[not frame.bidi].on_peer_blocked(frame.limit, frame_type)

    def handle_frame(self, frame: object) -> Optional[StreamEvent]:
        """Dispatch one of the stream-related frames to its handle_* method."""
        return _HANDLERS[type(frame)](self, frame)

    # -- frames to the peer ------------------------------------------------------------

    def take_control_frames(self, now: float, rtt: Optional[float] = None) -> list:
        """Every control frame due now, counted as sent (``rtt`` tunes the windows)."""
        out: list = []
        streams = self.streams
        if self._pending_resets:
            for stream_id in list(self._pending_resets):
                stream = streams.get(stream_id)
                if stream is None or stream.send is None:
                    del self._pending_resets[stream_id]
                elif self._usable(stream_id):
                    del self._pending_resets[stream_id]
                    reset = stream.send.take_reset()
                    if reset is not None:
                        out.append(ResetStream(stream_id, reset[0], reset[1]))
        if self._pending_stops:
            for stream_id in list(self._pending_stops):
                stream = streams.get(stream_id)
                if stream is None or stream.recv is None:
                    del self._pending_stops[stream_id]
                elif self._usable(stream_id):
                    del self._pending_stops[stream_id]
                    code = stream.recv.take_stop()
                    if code is not None:
                        out.append(StopSending(stream_id, code))
        maximum = self.recv_data.take_update(now, rtt)
        if maximum is not None:
            out.append(MaxData(maximum))
        if self._credit_updates:
            for stream_id in self._credit_updates:
                stream = streams.get(stream_id)
                # RFC 9000 §3.2: no MAX_STREAM_DATA once the final size is known.
                if stream is not None and stream.recv is not None and stream.recv.state == RecvState.RECV:
                    maximum = stream.recv.credit.take_update(now, rtt)
                    if maximum is not None:
                        out.append(MaxStreamData(stream_id, maximum))
            self._credit_updates.clear()
        for uni in (0, 1):
            maximum = self.peer_streams[uni].take_update()
            if maximum is not None:
                out.append(MaxStreams(not uni, maximum))
        if self._connection_blocked:
            self._connection_blocked = False
            if any(streams[i].send.has_unsent for i in self._send_queue if i in streams):  # type: ignore[union-attr]
                limit = self.send_data.take_blocked()
                if limit is not None:
                    out.append(DataBlocked(limit))
        if self._blocked_streams:
            for stream_id in self._blocked_streams:
                stream = streams.get(stream_id)
                if stream is not None and stream.send is not None and stream.send.has_unsent:
                    limit = stream.send.credit.take_blocked()
                    if limit is not None:
                        out.append(StreamDataBlocked(stream_id, limit))
            self._blocked_streams.clear()
        for uni in (0, 1):
            limit = self.local_streams[uni].take_blocked()
            if limit is not None:
                out.append(StreamsBlocked(not uni, limit))
        return out

    # The send scheduler (stream_scheduler.py); bound here as methods, so the
    # hot path costs no extra call.
    next_stream_frame = stream_scheduler.next_stream_frame
    next_stream_frames = stream_scheduler.next_stream_frames
    _note_blocked = stream_scheduler.note_blocked

    @property
    def blocked_pending(self) -> bool:
        """Cheap hint: a *_BLOCKED frame may be due (take_control_frames decides)."""
        return bool(self._blocked_streams) or self._connection_blocked or any(
            limit.blocked_due for limit in self.local_streams
        )

    @property
    def has_queued(self) -> bool:
        """Cheap hint: some stream is queued to send (data, FIN or retransmission)."""
        return bool(self._send_queue)

    @property
    def wants_to_send(self) -> bool:
        """True when take_control_frames or next_stream_frame would produce something."""
        streams = self.streams
        if self.recv_data.update_due or any(limit.update_due for limit in self.peer_streams):
            return True
        if any(limit.blocked_due for limit in self.local_streams):
            return True
        for stream_id in self._credit_updates:
            stream = streams.get(stream_id)
            if stream is not None and stream.recv is not None and stream.recv.state == RecvState.RECV:
                if stream.recv.credit.update_due:
                    return True
        for stream_id in self._blocked_streams:
            stream = streams.get(stream_id)
            if stream is not None and stream.send is not None and stream.send.has_unsent:
                if stream.send.credit.blocked_due:
                    return True
        if self._connection_blocked and self.send_data.blocked_due:
            return True
        for pending in (self._pending_resets, self._pending_stops):
            if any(i in streams and self._usable(i) for i in pending):
                return True
        return stream_scheduler.queue_wants_to_send(self)

    # -- what happened to frames we sent ------------------------------------------------

    def on_stream_frame_acked(self, stream_id: int, offset: int, length: int, fin: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and stream.send is not None:
            stream.send.on_data_acked(offset, length, fin)
            if stream.send.is_terminal:
                self._maybe_discard(stream)

    def on_stream_frame_lost(self, stream_id: int, offset: int, length: int, fin: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and stream.send is not None:
            stream.send.on_data_lost(offset, length, fin)
            if stream.send.has_pending:
                self._send_queue[stream_id] = None

    def on_frame_acked(self, frame: object) -> None:
        """A frame taken from this manager was acknowledged."""
        kind = type(frame)
        if kind is Stream:
            stream_frame: Stream = frame  # type: ignore[assignment]
            self.on_stream_frame_acked(
                stream_frame.stream_id, stream_frame.offset, len(stream_frame.data), stream_frame.fin
            )
        elif kind is ResetStream:
            stream = self.streams.get(frame.stream_id)  # type: ignore[attr-defined]
            if stream is not None and stream.send is not None:
                stream.send.on_reset_acked()
                self._maybe_discard(stream)

    def on_frame_lost(self, frame: object) -> None:
        """A frame taken from this manager was lost (or did not fit): re-arm it if still useful."""
        kind = type(frame)
        if kind is Stream:
            stream_frame: Stream = frame  # type: ignore[assignment]
            self.on_stream_frame_lost(
                stream_frame.stream_id, stream_frame.offset, len(stream_frame.data), stream_frame.fin
            )
            return
        if kind is MaxData:
            self.recv_data.on_update_lost(frame.maximum)  # type: ignore[attr-defined]
        elif kind is MaxStreams:
            self.peer_streams[not frame.bidi].on_update_lost(frame.maximum)  # type: ignore[attr-defined]
        elif kind is DataBlocked:
            self.send_data.on_blocked_lost(frame.limit)  # type: ignore[attr-defined]
            self._connection_blocked = True
        elif kind is StreamsBlocked:
            self.local_streams[not frame.bidi].on_blocked_lost(frame.limit)  # type: ignore[attr-defined]
        else:
            stream_id = frame.stream_id  # type: ignore[attr-defined]
            stream = self.streams.get(stream_id)
            if stream is None:
                return
            if kind is ResetStream and stream.send is not None:
                stream.send.on_reset_lost()
                if stream.send.reset_pending:
                    self._pending_resets[stream_id] = None
            elif kind is StopSending and stream.recv is not None:
                stream.recv.on_stop_lost()
                if stream.recv.stop_pending:
                    self._pending_stops[stream_id] = None
            elif kind is MaxStreamData and stream.recv is not None:
                stream.recv.credit.on_update_lost(frame.maximum)  # type: ignore[attr-defined]
                self._credit_updates[stream_id] = None
            elif kind is StreamDataBlocked and stream.send is not None:
                stream.send.credit.on_blocked_lost(frame.limit)  # type: ignore[attr-defined]
                self._blocked_streams[stream_id] = None

    # -- forgetting finished streams -------------------------------------------------------

    def _maybe_discard(self, stream: QuicStream) -> None:
        send, recv = stream.send, stream.recv
        if send is not None and not send.is_terminal:
            return
        if recv is not None:
            if not recv.is_terminal:
                return
            if not self.auto_consume and recv.credit.consumed < recv.read_offset:
                return  # the application still owes a consume() for delivered data
        stream_id = stream.stream_id
        if recv is not None:
            recv.release()  # terminal, so nothing should be held; but never leak budget
        del self.streams[stream_id]
        pendings = (
            self._send_queue, self._pending_resets, self._pending_stops, self._credit_updates, self._blocked_streams
        )
        for pending in pendings:
            pending.pop(stream_id, None)
        if not self.streams:
            # The last stream gone: an emptied dict keeps its table until
            # cleared, and an idle connection should not.
            for table in (self.streams, *pendings):
                if not table:
                    table.clear()
        if not self._is_local(stream_id):
            # RFC 9000 §4.6: credit for a new peer stream once one is closed.
            self.peer_streams[(stream_id >> 1) & 1].on_closed()

    def _join_held_chunks(self) -> None:
        """The reassembly budget ran out: join contiguous chunks on every stream."""
        for stream in self.streams.values():
            recv = stream.recv
            if recv is not None and recv.held_overhead:
                recv.join_chunks()


_HANDLERS = {
    Stream: StreamManager.handle_stream_frame,
    ResetStream: StreamManager.handle_reset_stream,
    StopSending: StreamManager.handle_stop_sending,
    MaxData: StreamManager.handle_max_data,
    MaxStreamData: StreamManager.handle_max_stream_data,
    MaxStreams: StreamManager.handle_max_streams,
    DataBlocked: StreamManager.handle_data_blocked,
    StreamDataBlocked: StreamManager.handle_stream_data_blocked,
    StreamsBlocked: StreamManager.handle_streams_blocked,
}
HANDLED_FRAME_TYPES = frozenset(_HANDLERS)
