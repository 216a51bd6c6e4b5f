# STREAM frames coalesced across the packets of one GRO batch (the receive
# batch path, QuicConnection._receive_short_batch).  Owns the held run: the
# frames of consecutive packets that continue each other on one stream (each
# at the offset where the last ended, none after a FIN), handed to the stream
# manager as one frame when something else comes, so a bulk transfer pays
# the stream's receive path once per batch instead of once per packet.  Only
# a stream that exists and receives is held: a frame that opens a stream, or
# any other frame, goes through the usual path (the connection flushes the
# run first, so the order of everything is kept).
from __future__ import annotations

from .frames import Stream

_tuple_new = tuple.__new__


class StreamRun:
    __slots__ = ("streams", "events", "stream_id", "offset", "end", "parts", "fin")

    def __init__(self, streams, events) -> None:
        self.streams = streams  # the StreamManager the run goes to
        self.events = events  # the connection's EventQueue
        self.stream_id = -1
        self.offset = self.end = 0
        self.parts: list = []
        self.fin = False

    def take(self, frame: Stream) -> bool:
        """Hold `frame`: it joins the run if it continues it; otherwise what is
        held is handed over first and `frame` starts a new run, if its stream
        exists and receives.  False: not held (the caller passes it on)."""
        stream_id, offset, data, fin = frame
        if self.parts and (stream_id != self.stream_id or offset != self.end or self.fin):
            self.flush()
        if not self.parts:
            stream = self.streams.streams.get(stream_id)
            if stream is None or stream.recv is None:
                return False
            self.stream_id = stream_id
            self.offset = offset
        self.parts.append(data)
        self.end = offset + len(data)
        self.fin = fin
        return True

    def flush(self) -> None:
        """The held run to the stream manager as one frame (its event to the
        queue), as the frames would have gone one by one."""
        parts = self.parts
        if not parts:
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.parts = []
        event = self.streams.handle_stream_frame(_tuple_new(Stream, (self.stream_id, self.offset, data, self.fin)))
        if event is not None:
            self.events.append(event)
