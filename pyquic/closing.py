# How one connection ends (RFC 9000 §10).  Closing owns
#   - the ConnectionTerminated event the application will see (why it ended:
#     our close, our error, the peer's close, a stateless reset, a timeout);
#   - the CONNECTION_CLOSE frame we owe and whether one is due now (the first
#     one, then the replies while closing, at a rate that halves with each
#     one: §10.2.1);
#   - when the closing or draining period ends (three PTOs, §10.2).
# The connection keeps its state (closing, draining, terminated) and does
# what entering one means for the other rooms (queues dropped, keys
# discarded); the frame is built by packet_builder.build_close.
from __future__ import annotations

from typing import Optional

from .buffer import VARINT_MAX
from .errors import TransportError, UsageError
from .events import ConnectionTerminated
from .frames import ConnectionClose

__all__ = ["Closing"]


class Closing:
    __slots__ = ("event", "frame", "pending", "deadline", "_replies", "_reply_at")

    def __init__(self) -> None:
        self.event: Optional[ConnectionTerminated] = None
        self.frame: Optional[ConnectionClose] = None
        self.pending = False  # a CONNECTION_CLOSE is owed (asked for, or a reply while closing)
        self.deadline: Optional[float] = None  # the end of the closing or draining period
        self._replies = 0  # datagrams received while closing since the last reply
        self._reply_at = 1  # ... and how many make the next reply due

    def ask(self, error_code: int, frame_type: Optional[int], reason: str) -> None:
        """The application closes: CONNECTION_CLOSE 0x1d, or 0x1c when frame_type is given.
        What the frame cannot carry is refused here, while the caller is
        still on the stack, not later when the frame is built."""
        for name, value in (("error_code", error_code), ("frame_type", frame_type)):
            if value is not None and (not isinstance(value, int) or not 0 <= value <= VARINT_MAX):
                raise UsageError(f"{name} must be an int from 0 to 2**62-1, not {value!r}")
        if not isinstance(reason, str):
            raise UsageError(f"reason_phrase must be a str, not {type(reason).__name__}")
        self.event = ConnectionTerminated(error_code, frame_type, reason)
        self.frame = ConnectionClose(error_code, frame_type or 0, reason, application=frame_type is None)
        self.pending = True

    def on_error(self, error: TransportError) -> None:
        """We close because of `error` (a transport close, §10.2)."""
        frame_type = error.frame_type if error.frame_type is not None else 0
        self.event = ConnectionTerminated(error.code, frame_type, error.reason)
        self.frame = ConnectionClose(error.code, frame_type, error.reason, application=False)
        self.pending = True

    def on_peer_close(self, frame: ConnectionClose) -> None:
        """The peer closed (we drain, §10.2.2): its code and reason are the event's."""
        frame_type = None if frame.application else frame.frame_type
        self.event = ConnectionTerminated(frame.error_code, frame_type, frame.reason)

    def silently(self, error_code: int, reason: str) -> None:
        """Ended without a frame (idle or handshake timeout, stateless reset, failed path)."""
        self.event = ConnectionTerminated(error_code, None, reason)

    def start(self, now: float, pto: float) -> None:
        """Closing or draining begins: it lasts three PTOs (§10.2)."""
        self.deadline = now + 3 * pto

    def on_datagram(self) -> None:
        """A datagram arrived while closing: a reply is due after 1, 2, 4... of them (§10.2.1)."""
        self._replies += 1
        if self._replies >= self._reply_at:
            self._replies = 0
            self._reply_at *= 2
            self.pending = True

    def take(self) -> Optional[ConnectionClose]:
        """The frame to send now, if one is owed."""
        if not self.pending:
            return None
        self.pending = False
        return self.frame
