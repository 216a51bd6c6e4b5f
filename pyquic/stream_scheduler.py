# The send scheduler of StreamManager (streams.py): which stream sends next
# and how much, RFC 9000 §2.2 / §4.1.
# Owns:
#   next_stream_frame   - round-robin over the manager's send queue (the
#                         stream that sent goes to the back), one STREAM
#                         frame within stream and connection flow control;
#   next_stream_frames  - a burst: after that first frame, more full frames
#                         of the same stream's new data, from one buffer read;
#   note_blocked        - noting that flow control holds a stream back, so
#                         that STREAM_DATA_BLOCKED / DATA_BLOCKED may be due;
#   queue_wants_to_send - whether the send queue has something sendable now.
# The functions take the StreamManager as their first argument and read and
# change its state (_send_queue, _blocked_streams, send_data, ...) directly;
# StreamManager binds the first three as its methods, so the hot path costs no
# extra call.  Nothing here does I/O.
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .buffer import varint_size
from .frames import Stream

if TYPE_CHECKING:
    from .send_stream import SendStream
    from .streams import StreamManager

_tuple_new = tuple.__new__
# The first value whose varint is longer than 1, 2, 4, 8 bytes (RFC 9000 §16).
_VARINT_SIZE_ENDS = {1: 0x40, 2: 0x4000, 4: 0x40000000, 8: 1 << 62}


def next_stream_frame(self: StreamManager, max_frame_size: int) -> Optional[Stream]:
    """The next STREAM frame, at most ``max_frame_size`` bytes encoded
    (counting an explicit length and offset), from the streams in turn."""
    queue = self._send_queue
    streams = self.streams
    connection = self.send_data
    finished = []
    result = None
    for stream_id in queue:
        stream = streams.get(stream_id)
        send = stream.send if stream is not None else None
        if send is None or not send.has_pending:
            finished.append(stream_id)
            continue
        if not self._usable(stream_id):
            continue
        offset = send.next_offset
        base = 1 + varint_size(stream_id) + (varint_size(offset) if offset else 0)
        room = max_frame_size - base
        room -= varint_size(room) if room > 0 else 1
        credit = send.credit
        max_offset = min(credit.limit, send.send_offset + connection.available)
        before = send.send_offset
        frame = send.get_frame(room, max_offset)
        if frame is None:
            if room > 0 and not send._retransmit:
                note_blocked(self, stream_id, send)
            continue
        if send.send_offset > before:
            connection.consume(send.send_offset - before)
        data, offset, fin = frame
        result = Stream(stream_id, offset, data, fin)
        break
    for stream_id in finished:
        del queue[stream_id]
    if result is not None:
        # Round robin: the stream that sent goes to the back.
        del queue[result.stream_id]
        queue[result.stream_id] = None
    return result


def next_stream_frames(self: StreamManager, max_frame_size: int, count: int) -> list:
    """Up to ``count`` STREAM frames of at most ``max_frame_size`` bytes
    each, for consecutive packets of a burst.  The first is what
    next_stream_frame gives; when it was new data cut by the room, more
    full frames of the same stream's new data follow (within flow
    control), sliced from one read of its buffer.  Frames the caller
    does not send go back through on_frame_lost."""
    first = self.next_stream_frame(max_frame_size)
    if first is None:
        return []
    if count <= 1 or first.fin:
        return [first]
    stream_id = first.stream_id
    send = self.streams[stream_id].send
    start = first.offset + len(first.data)
    if send._retransmit or send.send_offset != start:
        return [first]  # a retransmission, or not the newest data
    base = 1 + varint_size(stream_id)
    used = base + (varint_size(first.offset) if first.offset else 0) + varint_size(len(first.data)) + len(first.data)
    if used < max_frame_size - 1:
        return [first]  # the stream ran out (or hit a limit): no more now
    limit = min(send.write_offset, send.credit.limit, start + self.send_data.available)
    pieces = []
    offset = start
    room_until = room = 0  # the room per frame holds while the offset's varint size does
    for _ in range(count - 1):
        if offset >= limit:
            break
        if offset >= room_until:
            offset_size = varint_size(offset)
            room_until = _VARINT_SIZE_ENDS[offset_size]
            room = max_frame_size - base - offset_size
            room -= varint_size(room)
        n = min(room, limit - offset)
        pieces.append((offset, n))
        offset += n
        if n < room:
            break
    if not pieces:
        return [first]
    total = offset - start
    taken = send.get_frame(total, start + total)
    if taken is None:  # pragma: no cover - the limits above allow it
        return [first]
    data, _, fin = taken
    self.send_data.consume(total)
    view = memoryview(data)
    frames = [first]
    append = frames.append
    for piece_offset, n in pieces:  # tuple.__new__: a Stream per packet without NamedTuple's __new__
        at = piece_offset - start
        append(_tuple_new(Stream, (stream_id, piece_offset, view[at : at + n], False)))
    if fin:
        frames[-1] = frames[-1]._replace(fin=True)
    return frames


def note_blocked(self: StreamManager, stream_id: int, send: SendStream) -> None:
    """Flow control holds back new data of this stream: *_BLOCKED may be due (RFC 9000 §4.1)."""
    if send.has_unsent and self._usable(stream_id):
        if send.send_offset >= send.credit.limit:
            self._blocked_streams[stream_id] = None
        if not self.send_data.available:
            self._connection_blocked = True


def queue_wants_to_send(self: StreamManager) -> bool:
    """True when next_stream_frame would produce something (the send queue's part of StreamManager.wants_to_send)."""
    streams = self.streams
    available = self.send_data.available
    for stream_id in self._send_queue:
        stream = streams.get(stream_id)
        send = stream.send if stream is not None else None
        if send is None or not send.has_pending or not self._usable(stream_id):
            continue
        if send._retransmit or send._fin_pending and send.send_offset == send.write_offset:
            return True
        if available and send.send_offset < send.credit.limit:
            return True
    return False
