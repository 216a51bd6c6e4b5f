# The sending part of a QUIC stream (RFC 9000 §3.1): the Ready / Send / Data
# Sent / Reset Sent / Data Recvd / Reset Recvd state machine and the send
# buffer behind it.  Owns: application writes (large ones kept without a
# copy, small ones coalesced), what goes in the next STREAM frame,
# retransmission of lost ranges, freeing of the acknowledged prefix, and the
# RESET_STREAM we send.  Per range and per chunk, never per byte.  Used by
# streams.py, which owns the receiving part and the StreamManager.
from __future__ import annotations

from bisect import bisect_left, bisect_right
from enum import IntEnum
from typing import Optional, Union

from .errors import UsageError
from .flow_control import SendCredit

BytesLike = Union[bytes, bytearray, memoryview]

# Application writes shorter than this are copied into a shared bytearray
# (up to COALESCE_LIMIT bytes) instead of becoming one chunk each.
SMALL_WRITE = 4096
COALESCE_LIMIT = 1 << 16


# --- ranges --------------------------------------------------------------------


class _Spans(list):
    """Disjoint half-open ranges as one flat sorted list [s0, e0, s1, e1, ...]
    (the list itself: every stream's sending part has two of these).

    Like rangeset.RangeSet, but never drops ranges (acknowledged and lost
    ranges must not be forgotten) and can list what a range misses.  Their
    number is bounded by our own packets in flight, not by the peer.
    """

    __slots__ = ()

    def add(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        flat = self
        if not flat or start > flat[-1]:
            flat.extend((start, stop))
            return
        i = bisect_left(flat, start)
        j = bisect_right(flat, stop)
        if i & 1:
            i -= 1
            start = flat[i]
        if j & 1:
            stop = flat[j]
            j += 1
        flat[i:j] = (start, stop)

    def subtract(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        flat = self
        i = bisect_right(flat, start)
        j = bisect_left(flat, stop)
        pieces: list[int] = []
        if i & 1:
            i -= 1
            if flat[i] < start:
                pieces += (flat[i], start)
        if j & 1:
            if stop < flat[j]:
                pieces += (stop, flat[j])
            j += 1
        flat[i:j] = pieces

    def missing(self, start: int, stop: int) -> list[int]:
        """The parts of [start, stop) not in the set, flat."""
        flat = self
        i = bisect_right(flat, start)
        j = bisect_left(flat, stop)
        # Boundaries strictly inside (start, stop) alternate covered/uncovered.
        inner = flat[i:j]
        out = ([] if i & 1 else [start]) + inner + ([] if j & 1 else [stop])
        return [v for pair in zip(out[0::2], out[1::2]) if pair[0] < pair[1] for v in pair]


# --- the sending part -------------------------------------------------------------


class SendState(IntEnum):
    """RFC 9000 §3.1, Figure 2."""

    READY = 0
    SEND = 1
    DATA_SENT = 2
    RESET_SENT = 3
    DATA_RECVD = 4
    RESET_RECVD = 5


class SendStream:
    """The sending part of a stream: a send buffer from the acknowledged
    prefix to the end of what the application wrote.

    Offsets: ``acked_offset`` <= ``send_offset`` (next new byte) <=
    ``write_offset`` (end of written data).  Lost ranges wait in
    ``_retransmit`` and go before new data; acknowledged ranges above the
    prefix wait in ``_acked`` until the prefix reaches them.
    """

    __slots__ = (
        "stream_id",
        "state",
        "credit",
        "error_code",
        "reset_pending",
        "acked_offset",
        "send_offset",
        "write_offset",
        "fin_offset",
        "_fin_pending",
        "_fin_acked",
        "_starts",
        "_chunks",
        "_head",
        "_retransmit",
        "_acked",
    )

    def __init__(self, stream_id: int, limit: int = 0) -> None:
        self.stream_id = stream_id
        self.state = SendState.READY
        self.credit = SendCredit(limit)  # the peer's MAX_STREAM_DATA; used = send_offset
        self.error_code: Optional[int] = None
        self.reset_pending = False
        self.acked_offset = 0
        self.send_offset = 0
        self.write_offset = 0
        self.fin_offset: Optional[int] = None
        self._fin_pending = False
        self._fin_acked = False
        self._starts: list[int] = []
        self._chunks: list[Optional[BytesLike]] = []
        self._head = 0  # chunks before this index are freed
        self._retransmit = _Spans()
        self._acked = _Spans()

    @property
    def is_terminal(self) -> bool:
        return self.state >= SendState.DATA_RECVD

    @property
    def can_write(self) -> bool:
        return self.fin_offset is None and self.state <= SendState.SEND

    @property
    def has_pending(self) -> bool:
        """Something to (re)send, flow control aside."""
        return self.state <= SendState.DATA_SENT and (
            bool(self._retransmit) or self.send_offset < self.write_offset or self._fin_pending
        )

    @property
    def has_unsent(self) -> bool:
        return self.state <= SendState.DATA_SENT and self.send_offset < self.write_offset

    @property
    def next_offset(self) -> int:
        """The offset the next frame starts at (for sizing its header)."""
        return self._retransmit[0] if self._retransmit else self.send_offset

    @property
    def buffered(self) -> int:
        """Bytes held: written and not yet acknowledged."""
        return self.write_offset - self.acked_offset

    def write(self, data: BytesLike, end_stream: bool = False) -> None:
        """Append application data; ``end_stream`` ends the stream (FIN) after it."""
        if not self.can_write:
            raise UsageError(f"stream {self.stream_id} cannot take more data ({self.state.name})")
        size = len(data)
        if size:
            chunks = self._chunks
            if size < SMALL_WRITE:
                last = chunks[-1] if len(chunks) > self._head else None
                if type(last) is bytearray and len(last) < COALESCE_LIMIT:
                    last += data
                else:
                    self._starts.append(self.write_offset)
                    chunks.append(bytearray(data))
            else:
                # bytes are kept as they are; anything mutable is copied once.
                self._starts.append(self.write_offset)
                chunks.append(data if type(data) is bytes else bytes(data))
            self.write_offset += size
        if end_stream:
            self.fin_offset = self.write_offset
            self._fin_pending = True

    def get_frame(self, max_size: int, max_offset: Optional[int] = None) -> Optional[tuple[BytesLike, int, bool]]:
        """The next (data, offset, fin) to send, counted as sent; or None.

        ``max_size`` caps the data bytes (0 still allows a bare FIN);
        ``max_offset`` caps how far new data may go (flow control).  Lost
        data goes first; it was within the limits when first sent.
        """
        if self.state > SendState.DATA_SENT or max_size < 0:
            return None
        retransmit = self._retransmit
        if retransmit:
            start, stop = retransmit[0], retransmit[1]
            if stop > start + max_size:
                stop = start + max_size
            if stop <= start:
                return None
            retransmit.subtract(start, stop)
            fin = self._fin_pending and stop == self.fin_offset
            if fin:
                self._fin_pending = False
            return self._slice(start, stop), start, fin
        start = self.send_offset
        stop = min(self.write_offset, start + max_size)
        if max_offset is not None and stop > max_offset:
            stop = max(max_offset, start)
        fin = self._fin_pending and stop == self.fin_offset
        if stop == start and not fin:
            return None
        self.send_offset = stop
        if stop > self.credit.used:
            self.credit.used = stop
        if fin:
            self._fin_pending = False
            self.state = SendState.DATA_SENT
        elif self.state == SendState.READY:
            self.state = SendState.SEND
        return (self._slice(start, stop) if stop > start else b""), start, fin

    def _slice(self, start: int, stop: int) -> BytesLike:
        starts = self._starts
        chunks = self._chunks
        i = bisect_right(starts, start, self._head) - 1
        parts: list[BytesLike] = []
        while start < stop:
            chunk = chunks[i]
            assert chunk is not None
            chunk_start = starts[i]
            a = start - chunk_start
            b = min(stop - chunk_start, len(chunk))
            if type(chunk) is bytearray:
                parts.append(bytes(memoryview(chunk)[a:b]))
            elif a == 0 and b == len(chunk):
                parts.append(chunk)
            else:
                parts.append(memoryview(chunk)[a:b])
            start = chunk_start + b
            i += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def on_data_acked(self, offset: int, length: int, fin: bool) -> None:
        """A STREAM frame we sent was acknowledged."""
        if self.state > SendState.DATA_SENT:
            return  # reset or done: the RESET_STREAM (or nothing) decides now
        stop = offset + length
        if stop > self.acked_offset and length:
            start = max(offset, self.acked_offset)
            self._retransmit.subtract(start, stop)
            acked = self._acked
            acked.add(start, stop)
            if acked[0] <= self.acked_offset:
                self.acked_offset = acked[1]
                del acked[:2]
                self._free_acked()
        if fin:
            self._fin_acked = True
            self._fin_pending = False
        if self._fin_acked and self.acked_offset == self.fin_offset:
            # RFC 9000 §3.1: all data and the FIN acknowledged -> Data Recvd.
            self.state = SendState.DATA_RECVD
            self._release()

    def on_data_lost(self, offset: int, length: int, fin: bool) -> None:
        """A STREAM frame we sent was declared lost: resend what is not acknowledged."""
        if self.state > SendState.DATA_SENT:
            return  # RFC 9000 §3.3: no STREAM retransmission after RESET_STREAM
        start = max(offset, self.acked_offset)
        stop = offset + length
        if stop > start:
            flat = self._acked.missing(start, stop)
            for k in range(0, len(flat), 2):
                self._retransmit.add(flat[k], flat[k + 1])
        if fin and not self._fin_acked:
            self._fin_pending = True

    def _free_acked(self) -> None:
        starts = self._starts
        chunks = self._chunks
        head = self._head
        count = len(starts)
        while head < count:
            chunk = chunks[head]
            assert chunk is not None
            if starts[head] + len(chunk) > self.acked_offset:
                break
            chunks[head] = None
            head += 1
        if head > 32 and head * 2 > count:
            del starts[:head]
            del chunks[:head]
            head = 0
        self._head = head

    def _release(self) -> None:
        self._starts = []
        self._chunks = []
        self._head = 0
        self._retransmit = _Spans()
        self._acked = _Spans()

    def drop_buffered(self) -> None:
        """The connection is closing: nothing held will be sent or resent."""
        self._release()

    def reset(self, error_code: int) -> bool:
        """Abandon sending (RFC 9000 §3.1: Ready/Send/Data Sent -> Reset Sent); True if it did."""
        if self.state > SendState.DATA_SENT:
            return False
        self.state = SendState.RESET_SENT
        self.error_code = error_code
        self.reset_pending = True
        self._fin_pending = False
        self._release()
        return True

    @property
    def final_size(self) -> int:
        """RFC 9000 §4.5: the final size in RESET_STREAM is the amount of data sent."""
        return self.send_offset

    def take_reset(self) -> Optional[tuple[int, int]]:
        """(error_code, final_size) for a RESET_STREAM to send now, or None."""
        if not self.reset_pending or self.error_code is None:
            return None
        self.reset_pending = False
        return self.error_code, self.send_offset

    def on_reset_acked(self) -> None:
        if self.state == SendState.RESET_SENT:
            self.state = SendState.RESET_RECVD

    def on_reset_lost(self) -> None:
        if self.state == SendState.RESET_SENT:
            self.reset_pending = True
