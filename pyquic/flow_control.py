# Flow control (RFC 9000 §4): credit for bytes, at stream and connection
# level, in both directions, and credit for streams.  Owns:
#   RecvCredit       - what we let the peer send (one stream, or the whole
#                      connection): enforcing the limit (FLOW_CONTROL_ERROR),
#                      deciding when to advertise more (MAX_DATA /
#                      MAX_STREAM_DATA) with an auto-tuned window;
#   SendCredit       - what the peer lets us send: the limit, what may go now,
#                      and DATA_BLOCKED / STREAM_DATA_BLOCKED once per limit;
#   PeerStreamLimit  - how many streams of one type the peer may open
#                      (STREAM_LIMIT_ERROR), raised with MAX_STREAMS as the
#                      peer's streams close;
#   LocalStreamLimit - how many streams of one type we may open (MAX_STREAMS
#                      from the peer, STREAMS_BLOCKED once per limit).
# Nothing here builds frames: each "take_*" method returns the value the
# frame should carry (or None) and counts it as sent; "on_*_lost" re-arms it.
# Time comes in as an argument (``now``, float seconds), as does the RTT.
from __future__ import annotations

from typing import Optional

from .errors import TransportError, UsageError

# RFC 9000 §4.6: a stream count cannot exceed 2^60 (stream IDs are 62 bits).
MAX_STREAM_COUNT = 1 << 60
# RFC 9000 §16: the largest value a variable-length integer carries.
MAX_VARINT = (1 << 62) - 1

FRAME_MAX_STREAMS_BIDI = 0x12
FRAME_MAX_STREAMS_UNI = 0x13
FRAME_STREAMS_BLOCKED_BIDI = 0x16
FRAME_STREAMS_BLOCKED_UNI = 0x17


class _AdvertisedLimit:
    """What RecvCredit and PeerStreamLimit share: a limit we advertise
    (MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS) and send again once when the
    frame carrying the current value is lost.  Subclasses hold ``limit`` and
    ``_resend`` in their slots."""

    __slots__ = ()
    limit: int
    _resend: bool

    def _take_resend(self) -> Optional[int]:
        """The current limit when its frame is to be sent again (counted as sent), else None."""
        if self._resend:
            self._resend = False
            return self.limit
        return None

    def on_update_lost(self, value: int) -> None:
        """A frame carrying ``value`` was lost: resend if still current."""
        if value == self.limit:
            self._resend = True


class _PeerSetLimit:
    """What SendCredit and LocalStreamLimit share: a limit the peer sets on
    us, reported once per value in a *_BLOCKED frame (RFC 9000 §4.1, §4.6)
    while it holds us back.  Subclasses hold ``limit`` and ``_blocked_sent``
    in their slots and define ``blocked_due``."""

    __slots__ = ()
    limit: int
    _blocked_sent: Optional[int]
    blocked_due: bool

    def take_blocked(self) -> Optional[int]:
        """The limit to report in DATA_BLOCKED / STREAM_DATA_BLOCKED /
        STREAMS_BLOCKED, once per limit value.

        RFC 9000 §4.1: a sender SHOULD send it when it has data to send but
        is blocked; the caller only asks when it has data waiting.
        """
        if self.blocked_due:
            self._blocked_sent = self.limit
            return self.limit
        return None

    def on_blocked_lost(self, value: int) -> None:
        """A *_BLOCKED frame carrying ``value`` was lost: resend if still blocked at it."""
        if value == self.limit and self._blocked_sent == value:
            self._blocked_sent = None


class RecvCredit(_AdvertisedLimit):
    """Receive-side flow control for one stream or for the connection.

    ``received`` is the highest offset received on a stream, or the sum of
    those over all streams for the connection (RFC 9000 §4.1, §4.5).
    ``consumed`` counts bytes handed to the application.  An update is due
    once less than half a window of credit is left; it advertises
    ``consumed + window``.  When updates come less than two RTTs apart, the
    window was what limited the peer, so it doubles, up to ``max_window``.
    """

    __slots__ = ("limit", "received", "consumed", "window", "max_window", "_last_update", "_resend")

    def __init__(self, window: int, max_window: Optional[int] = None) -> None:
        if not 0 <= window <= MAX_VARINT:
            raise UsageError(f"flow control window out of range: {window}")
        self.window = window
        self.max_window = min(max(window, max_window or window), MAX_VARINT)
        self.limit = window  # the limit the peer knows (transport parameter first)
        self.received = 0
        self.consumed = 0
        self._last_update: Optional[float] = None
        self._resend = False

    def on_received(self, received: int, frame_type: Optional[int] = None) -> int:
        """The peer's data now reaches ``received``; returns how much that added.

        RFC 9000 §4.1: a receiver MUST close the connection with
        FLOW_CONTROL_ERROR when the sender goes past the advertised limit.
        """
        if received > self.limit:
            raise TransportError.FLOW_CONTROL_ERROR(
                f"peer sent up to {received}, beyond the limit of {self.limit}", frame_type=frame_type
            )
        added = received - self.received
        if added <= 0:
            return 0
        self.received = received
        return added

    def on_consumed(self, count: int) -> None:
        """The application took ``count`` more bytes (or they were given up by a reset)."""
        self.consumed += count

    @property
    def update_due(self) -> bool:
        """True when take_update() would return a value."""
        if self._resend:
            return True
        return self.limit - self.consumed <= self.window // 2 and self.consumed + self.window > self.limit

    def take_update(self, now: float, rtt: Optional[float] = None) -> Optional[int]:
        """The new limit to advertise now (and count as sent), or None."""
        if self.limit - self.consumed <= self.window // 2:
            window = self.window
            if rtt is not None and self._last_update is not None and now - self._last_update < 2 * rtt:
                window = min(window * 2, self.max_window)
            new_limit = min(self.consumed + window, MAX_VARINT)
            if new_limit > self.limit:
                self.window = window
                self.limit = new_limit
                self._last_update = now
                self._resend = False
                return new_limit
        return self._take_resend()


class SendCredit(_PeerSetLimit):
    """Send-side flow control for one stream or for the connection.

    ``used`` is the highest offset sent on a stream, or the sum of new bytes
    sent on all streams for the connection.
    """

    __slots__ = ("limit", "used", "_blocked_sent")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.used = 0
        self._blocked_sent: Optional[int] = None

    @property
    def available(self) -> int:
        return self.limit - self.used if self.limit > self.used else 0

    def on_max(self, maximum: int) -> bool:
        """A MAX_DATA / MAX_STREAM_DATA arrived; True when it raised the limit.

        RFC 9000 §4.1: frames that do not increase the limit are ignored.
        """
        if maximum > self.limit:
            self.limit = maximum
            return True
        return False

    def consume(self, count: int) -> None:
        """``count`` new bytes were sent."""
        if self.used + count > self.limit:
            raise UsageError(f"sending {count} bytes exceeds the peer's limit of {self.limit}")
        self.used += count

    @property
    def blocked(self) -> bool:
        return self.used >= self.limit

    @property
    def blocked_due(self) -> bool:
        """True when take_blocked() would return a value."""
        return self.used >= self.limit and self._blocked_sent != self.limit


def check_stream_count(count: int, frame_type: int) -> None:
    """RFC 9000 §19.11, §19.14: a MAX_STREAMS or STREAMS_BLOCKED count above
    2^60 MUST be treated as FRAME_ENCODING_ERROR."""
    if count > MAX_STREAM_COUNT:
        raise TransportError.FRAME_ENCODING_ERROR(
            f"stream count {count} exceeds 2^60", frame_type=frame_type
        )


class PeerStreamLimit(_AdvertisedLimit):
    """How many streams of one type (bidi or uni) the peer may open.

    ``limit`` is the count advertised (transport parameter, then MAX_STREAMS);
    ``opened`` the number of peer streams of this type in existence or past;
    ``closed`` how many of them are finished and forgotten.  The limit moves
    to ``closed + window`` once a quarter window has been freed, or at once
    when the peer has used all it has.
    """

    __slots__ = ("limit", "window", "opened", "closed", "_resend", "_peer_blocked")

    def __init__(self, window: int) -> None:
        if not 0 <= window <= MAX_STREAM_COUNT:
            raise UsageError(f"stream count out of range: {window}")
        self.window = window
        self.limit = window
        self.opened = 0
        self.closed = 0
        self._resend = False
        self._peer_blocked = False

    def open(self, index: int, frame_type: Optional[int] = None) -> int:
        """The peer used the stream with this index (stream_id >> 2); returns how many it opened.

        RFC 9000 §4.6: an endpoint that receives a frame with a stream ID
        exceeding the limit it has sent MUST treat this as STREAM_LIMIT_ERROR.
        """
        if index >= self.limit:
            raise TransportError.STREAM_LIMIT_ERROR(
                f"peer opened stream number {index + 1}, beyond the limit of {self.limit}",
                frame_type=frame_type,
            )
        if index < self.opened:
            return 0
        added = index + 1 - self.opened
        self.opened = index + 1
        return added

    def on_closed(self, count: int = 1) -> None:
        """``count`` peer streams of this type are finished and their state discarded."""
        self.closed += count

    def on_peer_blocked(self, count: int, frame_type: int = FRAME_STREAMS_BLOCKED_BIDI) -> None:
        """The peer sent STREAMS_BLOCKED: send any credit we can give without waiting."""
        check_stream_count(count, frame_type)
        if count >= self.limit:
            self._peer_blocked = True

    @property
    def update_due(self) -> bool:
        return self._resend or self._update_value() is not None

    def _update_value(self) -> Optional[int]:
        new_limit = min(self.closed + self.window, MAX_STREAM_COUNT)
        if new_limit <= self.limit:
            return None
        if new_limit - self.limit >= max(1, self.window // 4) or self.opened >= self.limit or self._peer_blocked:
            return new_limit
        return None

    def take_update(self) -> Optional[int]:
        """The count to advertise in MAX_STREAMS now (counted as sent), or None."""
        new_limit = self._update_value()
        if new_limit is not None:
            self.limit = new_limit
            self._resend = False
            self._peer_blocked = False
            return new_limit
        return self._take_resend()


class LocalStreamLimit(_PeerSetLimit):
    """How many streams of one type we may open, as the peer allows.

    ``opened`` counts the streams the application created.  Creating one
    beyond ``limit`` is allowed: it waits, named by no frame, until
    MAX_STREAMS raises the limit (RFC 9000 §4.6), and meanwhile STREAMS_BLOCKED
    reports the limit once.
    """

    __slots__ = ("limit", "opened", "_blocked_sent")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.opened = 0
        self._blocked_sent: Optional[int] = None

    def on_max_streams(self, maximum: int, frame_type: int = FRAME_MAX_STREAMS_BIDI) -> bool:
        """MAX_STREAMS (or the transport parameter) arrived; True when the limit rose.

        RFC 9000 §19.11: above 2^60 is FRAME_ENCODING_ERROR; §4.6: frames that
        do not increase the limit are ignored.
        """
        check_stream_count(maximum, frame_type)
        if maximum > self.limit:
            self.limit = maximum
            return True
        return False

    @property
    def available(self) -> int:
        """How many more streams may be opened before one has to wait."""
        return self.limit - self.opened if self.limit > self.opened else 0

    def open(self) -> int:
        """Count one more stream; returns its index (it may have to wait)."""
        self.opened += 1
        return self.opened - 1

    def allows(self, index: int) -> bool:
        """Whether the stream with this index may appear in frames yet."""
        return index < self.limit

    @property
    def blocked_due(self) -> bool:
        return self.opened > self.limit and self._blocked_sent != self.limit
