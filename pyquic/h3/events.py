# The events H3Connection.handle_event returns.  The names and fields of the
# first five are aioquic's (aioquic.h3.events), so an application can switch
# between the two; GoAwayReceived, SettingsReceived, StreamReset and
# StopSendingReceived are ours.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

Headers = list[tuple[bytes, bytes]]


class H3Event:
    """Base class of every HTTP/3 event."""


@dataclass
class HeadersReceived(H3Event):
    """A HEADERS frame: the request or response header section, or trailers
    (a HEADERS after DATA: stream_ended is then True)."""

    headers: Headers
    stream_id: int
    stream_ended: bool
    push_id: Optional[int] = None


@dataclass
class DataReceived(H3Event):
    """A piece of body, delivered as it arrives.  Without quic.auto_consume
    the application gives its credit back with quic.consume(stream_id, len(data))."""

    data: bytes = field(repr=False)
    stream_id: int
    stream_ended: bool
    push_id: Optional[int] = None


@dataclass
class DatagramReceived(H3Event):
    """An HTTP Datagram (RFC 9297) for the request on stream_id."""

    data: bytes
    stream_id: int


@dataclass
class WebTransportStreamDataReceived(H3Event):
    data: bytes
    stream_id: int
    stream_ended: bool
    session_id: int


@dataclass
class GoAwayReceived(H3Event):
    """The peer will process nothing at or above this ID (RFC 9114 §5.2): a
    stream ID from a server, a push ID from a client."""

    stream_id: int


@dataclass
class SettingsReceived(H3Event):
    settings: dict[int, int]


@dataclass
class StreamReset(H3Event):
    """The request stream is over before its end: the peer reset it
    (local=False), or we reset it on the peer's violation of HTTP/3 on that
    stream (local=True, error_code is the code we sent)."""

    stream_id: int
    error_code: int
    local: bool = False


@dataclass
class StopSendingReceived(H3Event):
    """The peer stopped reading the request stream: our sending side is reset."""

    stream_id: int
    error_code: int


__all__ = [
    "Headers", "H3Event", "HeadersReceived", "DataReceived", "DatagramReceived", "WebTransportStreamDataReceived",
    "GoAwayReceived", "SettingsReceived", "StreamReset", "StopSendingReceived",
]
