# The events a QuicConnection hands to its application through next_event(),
# named and shaped as aioquic names them so applications can switch.  They
# are plain slotted dataclasses (cheap to make: one per STREAM frame on the
# receive path); the connection queues them in the order things happened.
# The stream events are defined here and used by streams.py.
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union


class QuicEvent:
    """Base class of every event."""

    __slots__ = ()


@dataclass(slots=True)
class ProtocolNegotiated(QuicEvent):
    """ALPN chose this protocol (emitted right before HandshakeCompleted)."""

    alpn_protocol: Optional[str]


@dataclass(slots=True)
class HandshakeCompleted(QuicEvent):
    alpn_protocol: Optional[str]
    early_data_accepted: bool
    session_resumed: bool


@dataclass(slots=True)
class ZeroRttRejected(QuicEvent):
    """The server refused our 0-RTT data (RFC 9001 §4.6.2).  What those
    packets carried goes again in 1-RTT: `resent` maps each stream ID to the
    bytes of it that were sent in 0-RTT and are sent again.  The server's
    new limits (possibly lower) apply from now on; an application that
    assumed anything of the 0-RTT attempt (ALPN, settings) should check."""

    resent: dict[int, int]


@dataclass(slots=True)
class StreamDataReceived(QuicEvent):
    stream_id: int
    data: bytes = field(repr=False)
    end_stream: bool

    def __repr__(self) -> str:
        return f"StreamDataReceived(stream_id={self.stream_id}, {len(self.data)} bytes, end_stream={self.end_stream})"


@dataclass(slots=True)
class StreamReset(QuicEvent):
    """The peer reset its sending part (RESET_STREAM)."""

    stream_id: int
    error_code: int


@dataclass(slots=True)
class StopSendingReceived(QuicEvent):
    """The peer asked us to stop sending; the stream was reset with its code."""

    stream_id: int
    error_code: int


@dataclass(slots=True)
class ConnectionIdIssued(QuicEvent):
    """We issued a new connection ID: route it to this connection."""

    connection_id: bytes


@dataclass(slots=True)
class ConnectionIdRetired(QuicEvent):
    """One of our connection IDs was retired: stop routing it."""

    connection_id: bytes


@dataclass(slots=True)
class PingAcknowledged(QuicEvent):
    uid: int


@dataclass(slots=True)
class DatagramFrameReceived(QuicEvent):
    data: bytes


@dataclass(slots=True)
class PathValidated(QuicEvent):
    """A path validation succeeded (RFC 9000 §8.2): the peer at ``addr``
    answered our PATH_CHALLENGE (a client's new local address works)."""

    addr: Any


@dataclass(slots=True)
class PathValidationFailed(QuicEvent):
    """A path validation gave up (RFC 9000 §8.2.4) on the path to ``addr``."""

    addr: Any


@dataclass(slots=True)
class NewTokenReceived(QuicEvent):
    """Client: the server's token for a future connection to it (RFC 9000
    §8.1.3); give it back as QuicConfiguration.token next time."""

    token: bytes


@dataclass(slots=True)
class ConnectionTerminated(QuicEvent):
    """The connection is over.  error_code is a transport code (frame_type set,
    possibly 0) or, when frame_type is None, an application code."""

    error_code: int
    frame_type: Optional[int]
    reason_phrase: str


StreamEvent = Union[StreamDataReceived, StreamReset, StopSendingReceived]


def merge_stream_data(event: StreamDataReceived, queue: Sequence, at: int) -> tuple[StreamDataReceived, int]:
    """`event` joined with the StreamDataReceived events of its stream that
    follow it in `queue` from index `at`, up to the one with end_stream; and
    the index of the first event not joined."""
    sid = event.stream_id
    chunks = [event.data]
    end = False
    n = len(queue)
    while at < n and not end:
        nxt = queue[at]
        if type(nxt) is not StreamDataReceived or nxt.stream_id != sid:
            break
        at += 1
        chunks.append(nxt.data)
        end = nxt.end_stream
    if len(chunks) == 1:
        return event, at
    return StreamDataReceived(stream_id=sid, data=b"".join(chunks), end_stream=end), at


class EventQueue:
    """A connection's events, in order.  A list read from an index and
    emptied once all are read: an idle connection holds an empty list where
    a deque would hold a 64-slot block.  Data of one stream that arrived in a
    row comes out as one StreamDataReceived."""

    __slots__ = ("_items", "_at")

    def __init__(self) -> None:
        self._items: list = []
        self._at = 0

    def append(self, event: QuicEvent) -> None:
        self._items.append(event)

    def pop(self) -> Optional[QuicEvent]:
        items = self._items
        at = self._at
        if at >= len(items):
            return None
        event = items[at]
        at += 1
        if type(event) is StreamDataReceived and at < len(items) and not event.end_stream:
            event, at = merge_stream_data(event, items, at)
        if at == len(items):
            items.clear()
            at = 0
        elif at >= 64 and 2 * at >= len(items):
            # A reader that never quite catches up: drop what it has read
            # (amortised: at least as many events were read as are left).
            del items[:at]
            at = 0
        self._at = at
        return event


__all__ = [
    "EventQueue",
    "QuicEvent",
    "ProtocolNegotiated",
    "HandshakeCompleted",
    "ZeroRttRejected",
    "StreamDataReceived",
    "StreamReset",
    "StopSendingReceived",
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "PingAcknowledged",
    "DatagramFrameReceived",
    "ConnectionTerminated",
    "StreamEvent",
]
