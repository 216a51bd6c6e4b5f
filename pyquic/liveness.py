# When a connection gives up on a silent peer.  Owns two clocks:
#   - the idle timeout (RFC 9000 §10.1): the smaller of the two advertised
#     values, and at least three PTOs; restarted by every packet that opens
#     and by the first ack-eliciting packet sent after one;
#   - the handshake timeout (QuicConfiguration.handshake_timeout): until the
#     handshake is confirmed, that long (or the idle timeout, if shorter)
#     without a packet from the peer that opens -- so a peer whose probes get
#     through under heavy loss keeps its handshake -- and in all never longer
#     than the longer of the two.  A client counts to confirmation, not
#     completion: a server that dropped its half-open connection never sends
#     HANDSHAKE_DONE, and the idle timeout may be long.
# Both end the connection silently.  The connection says what happened and
# asks when; times come in as arguments (sans-I/O).
from __future__ import annotations

from typing import Optional

__all__ = ["Liveness"]


class Liveness:
    __slots__ = ("idle_timeout", "handshake_timeout", "last_activity", "restart_on_send", "started",
                 "last_received")

    def __init__(self, idle_timeout: float, handshake_timeout: Optional[float]) -> None:
        self.idle_timeout = idle_timeout  # 0: none
        self.handshake_timeout = handshake_timeout  # None: none
        self.last_activity: Optional[float] = None
        self.restart_on_send = True
        self.started: Optional[float] = None  # the first packet sent or received
        self.last_received = 0.0  # the last packet from the peer that opened

    def start(self, now: float) -> None:
        self.last_activity = self.started = self.last_received = now

    def on_received(self, now: float) -> None:
        self.last_activity = self.last_received = now
        self.restart_on_send = True

    def on_eliciting_sent(self, now: float) -> None:
        if self.restart_on_send:
            self.last_activity = now
            self.restart_on_send = False

    def on_peer_idle_timeout(self, seconds: float) -> None:
        """The peer's max_idle_timeout (non-zero): the smaller one applies."""
        self.idle_timeout = min(self.idle_timeout, seconds) if self.idle_timeout else seconds

    def idle_deadline(self, pto: float) -> Optional[float]:
        if self.last_activity is None or not self.idle_timeout:
            return None
        return self.last_activity + max(self.idle_timeout, 3 * pto)

    def handshake_deadline(self, confirmed: bool) -> Optional[float]:
        timeout = self.handshake_timeout
        if timeout is None or confirmed or self.started is None:
            return None
        idle = self.idle_timeout
        gap = min(timeout, idle) if idle else timeout
        return min(self.last_received + gap, self.started + max(timeout, idle))

    def deadline(self, pto: float, confirmed: bool) -> Optional[float]:
        times = [t for t in (self.idle_deadline(pto), self.handshake_deadline(confirmed)) if t is not None]
        return min(times) if times else None

    def expired(self, now: float, pto: float, confirmed: bool) -> Optional[str]:
        """Why the connection ends at `now` ("Idle timeout", "Handshake timeout"), or None."""
        idle = self.idle_deadline(pto)
        if idle is not None and now >= idle:
            return "Idle timeout"
        handshake = self.handshake_deadline(confirmed)
        if handshake is not None and now >= handshake:
            return "Handshake timeout"
        return None
