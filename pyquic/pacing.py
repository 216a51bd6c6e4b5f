# The pacer (RFC 9002 §7.7): spreads packets over the round trip at
# rate = N * congestion_window / smoothed_rtt with N = 1.25, so that pacing
# never holds the sender below its window, through a token bucket whose
# depth is a burst allowance of BURST_PACKETS full-sized datagrams.
#
# Why a burst of 10: the asyncio layer sends consecutive same-sized packets
# in one GSO write of up to 10 segments, and the initial window is 10
# datagrams (§7.2).  A bucket that holds 10 datagrams lets a whole GSO batch
# (or the whole initial window) pass together, while a sender that keeps
# sending is held to the rate once the bucket is empty (§7.7 allows bursts
# no larger than the initial window).
#
# Optionally (burst_time > 0) the bucket grows with the rate to hold
# burst_time seconds of sending, up to max_burst_packets: at high rates an
# event loop cannot wake up every few microseconds, so a connection lets
# out up to about a timer tick's worth (and one GSO write) at a time.
from __future__ import annotations

# RFC 9002 §7.7: N = 1.25 keeps pacing from limiting the window.
PACING_GAIN = 1.25
# The bucket depth in full-sized datagrams (see the header).
BURST_PACKETS = 10
# Rates are computed from an RTT of at least this (seconds), so a tiny or
# zero RTT sample can't make the rate infinite.
MIN_PACING_RTT = 0.000_001


class Pacer:
    """A token bucket refilled at the pacing rate.

    `next_send_time(now)` is the earliest time a full-sized datagram may go:
    `now` itself when it may go at once.  `on_sent(size, now)` spends tokens.
    Until `update_rate` gives a rate, nothing is paced.
    """

    def __init__(
        self,
        *,
        max_datagram_size: int = 1200,
        burst_packets: int = BURST_PACKETS,
        gain: float = PACING_GAIN,
        burst_time: float = 0.0,
        max_burst_packets: int | None = None,
    ) -> None:
        self.max_datagram_size = max_datagram_size
        self.burst_packets = burst_packets
        self.burst_time = burst_time
        self.max_burst_packets = max(burst_packets, max_burst_packets or burst_packets)
        self.gain = gain
        self.rate: float | None = None  # bytes per second
        self.capacity = float(burst_packets * max_datagram_size)
        self.tokens = self.capacity
        self._last_update: float | None = None

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        """RFC 9002 §7.7: rate = N * congestion_window / smoothed_rtt."""
        self.rate = self.gain * congestion_window / max(smoothed_rtt, MIN_PACING_RTT)
        if self.burst_time:
            mds = self.max_datagram_size
            self.capacity = float(
                min(self.max_burst_packets * mds, max(self.burst_packets * mds, self.rate * self.burst_time))
            )

    def _refill(self, now: float) -> None:
        if self._last_update is not None and self.rate is not None and now > self._last_update:
            self.tokens = min(self.capacity, self.tokens + (now - self._last_update) * self.rate)
        if self._last_update is None or now > self._last_update:
            self._last_update = now

    def next_send_time(self, now: float, size: int | None = None) -> float:
        """When a datagram of `size` (default: full-sized) may be sent."""
        if self.rate is None:
            return now
        self._refill(now)
        need = self.max_datagram_size if size is None else size
        if self.tokens >= need:
            return now
        return now + (need - self.tokens) / self.rate

    def burst_size(self, now: float) -> int:
        """How many full-sized datagrams may leave back to back right now
        (0 before `next_send_time`, at most what the bucket holds)."""
        if self.rate is None:
            return self.burst_packets
        self._refill(now)
        return max(0, min(self.max_burst_packets, int(self.tokens // self.max_datagram_size)))

    def on_sent(self, size: int, now: float) -> None:
        """Spend tokens for a datagram sent at `now` (the bucket may go into
        debt by less than one datagram; the next send then waits)."""
        if self.rate is None:
            return
        if self._last_update is None or now > self._last_update:  # else _refill() would do nothing
            self._refill(now)
        tokens = self.tokens - size  # once per datagram: max() and float() spelled out
        floor = -self.max_datagram_size
        self.tokens = tokens if tokens > floor else float(floor)
