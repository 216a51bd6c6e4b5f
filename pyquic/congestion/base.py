# The congestion controller interface (RFC 9002 §7) and what every controller
# shares: bytes in flight, the window, the recovery period (§7.3.2), the
# app-limited rule (§7.8), the window bounds (§7.2), slow start with
# HyStart++ (RFC 9406, hystart.py), undoing a reduction that a spurious loss
# caused (RFC 9438 §4.9: the state before it is kept, and restored when
# recovery says every packet of that loss arrived after all), and the
# registry that selects a controller by name ("reno", "cubic").
#
# A controller sees sent packets only as records with three attributes:
# `size` (bytes), `time_sent` (seconds) and `in_flight` (bool).  It never sees
# packet contents and never reads a clock: `now` always comes in.
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Protocol

from ..errors import UsageError
from .hystart import HyStart

# RFC 9002 §6.1.2: the timer granularity.
K_GRANULARITY = 0.001
# RFC 9002 §7.2: the initial window is 10 datagrams, bounded by 14720 bytes
# but never below two datagrams.
K_INITIAL_WINDOW_PACKETS = 10
K_INITIAL_WINDOW_BYTES_CAP = 14720
# RFC 9002 §7.2: the minimum window is two datagrams.
K_MINIMUM_WINDOW_PACKETS = 2
# While not in slow start, a window within this many datagrams of full counts
# as "cwnd-limited" (§7.8); see CongestionController.is_cwnd_limited.
CWND_LIMITED_SLACK_PACKETS = 3


class SentRecord(Protocol):
    """What a controller reads from a sent packet (recovery.SentPacket fits)."""

    size: int
    time_sent: float
    in_flight: bool


def initial_window(max_datagram_size: int) -> int:
    """RFC 9002 §7.2: min(10 * mds, max(14720, 2 * mds))."""
    return min(
        K_INITIAL_WINDOW_PACKETS * max_datagram_size,
        max(K_INITIAL_WINDOW_BYTES_CAP, K_MINIMUM_WINDOW_PACKETS * max_datagram_size),
    )


def minimum_window(max_datagram_size: int) -> int:
    """RFC 9002 §7.2: 2 * max_datagram_size."""
    return K_MINIMUM_WINDOW_PACKETS * max_datagram_size


class CongestionController(ABC):
    """Bytes in flight and the congestion window, driven by recovery.

    The recovery module calls, in this order for one ACK frame:
    `on_packets_lost` (which may start a recovery period, §7.3.2), then
    `on_packets_acked`, then `on_persistent_congestion` if it was established
    (§7.6.2).  `on_packets_discarded` removes bytes without any congestion
    signal (keys discarded, §6.4).  Only records with `in_flight` set count.

    App-limited (§7.8): the window grows only while it is the limit.  The
    controller judges that by itself from the peak of bytes in flight since
    the previous ACK batch (see `is_cwnd_limited`); a connection that knows
    better sets `app_limited` (True when it ran out of data with room left in
    the window, False once it fills the window again).
    """

    name = "base"

    def __init__(self, *, max_datagram_size: int = 1200) -> None:
        self.max_datagram_size = max_datagram_size
        self.congestion_window = initial_window(max_datagram_size)
        self.ssthresh: float = float("inf")
        self.bytes_in_flight = 0
        self.app_limited = False
        # When the current (or last) recovery period began (§7.3.2,
        # congestion_recovery_start_time); None when none has.
        self.recovery_start_time: float | None = None
        self._in_recovery = False
        # §7.3.2: on entering recovery one packet may be sent even beyond
        # the window, to speed up loss recovery.
        self._recovery_packet_allowed = False
        self._peak_in_flight = 0
        self.congestion_events = 0
        self.use_hystart = True  # RFC 9406 in slow start (LossRecovery sets it from the configuration)
        self.hystart = HyStart()
        self._undo: tuple | None = None  # (event number, state before it) for a spurious-loss undo
        self.undone_events = 0

    def reset(self) -> None:
        """Back to the initial window and slow start (RFC 9000 §9.4, a new
        path); bytes in flight, the count of congestion events and the
        choice of HyStart++ stay."""
        in_flight, events, use_hystart = self.bytes_in_flight, self.congestion_events, self.use_hystart
        type(self).__init__(self, max_datagram_size=self.max_datagram_size)
        self.bytes_in_flight, self.congestion_events, self.use_hystart = in_flight, events, use_hystart

    # -- the window -----------------------------------------------------

    @property
    def minimum_window(self) -> int:
        return minimum_window(self.max_datagram_size)

    @property
    def in_slow_start(self) -> bool:
        return self.congestion_window < self.ssthresh

    @property
    def in_recovery(self) -> bool:
        """True from a congestion event until a packet sent after it is acked."""
        return self._in_recovery

    def in_congestion_recovery(self, time_sent: float) -> bool:
        """RFC 9002 §7.3.2: a packet sent before the period started."""
        return self.recovery_start_time is not None and time_sent <= self.recovery_start_time

    def available_window(self) -> int:
        """Bytes that may be sent now without exceeding the window."""
        return max(0, self.congestion_window - self.bytes_in_flight)

    def can_send(self, size: int) -> bool:
        """RFC 9002 §7: a packet must not take bytes in flight above the window,
        except the one packet allowed on entering recovery (§7.3.2).  Probes
        sent on a PTO (§7.5) bypass this check: the connection doesn't ask."""
        return self.bytes_in_flight + size <= self.congestion_window or self._recovery_packet_allowed

    def is_cwnd_limited(self) -> bool:
        """Whether the window, not the application, limited sending lately.

        In slow start the window may double in one round, so half full is
        enough; otherwise it must be within a few datagrams of full.
        """
        if self.app_limited:
            return False
        peak = self._peak_in_flight
        if self.in_slow_start:
            return 2 * peak >= self.congestion_window
        return peak + CWND_LIMITED_SLACK_PACKETS * self.max_datagram_size >= self.congestion_window

    # -- events from recovery -------------------------------------------

    def on_packet_sent(self, size: int, now: float | None = None) -> None:
        """An in-flight packet of `size` bytes left (RFC 9002 §A.5)."""
        self.bytes_in_flight += size
        self._recovery_packet_allowed = False
        if self.bytes_in_flight > self._peak_in_flight:
            self._peak_in_flight = self.bytes_in_flight

    def on_packets_acked(self, records: Iterable[SentRecord], now: float) -> None:
        """Newly acknowledged records (RFC 9002 §A.6 OnPacketsAcked)."""
        cwnd_limited = self.is_cwnd_limited()
        self._on_ack_batch(now, cwnd_limited)
        hystart = self.hystart if self.use_hystart else None
        # Once per acked packet: bytes in flight and the recovery start kept in
        # locals (neither _grow nor HyStart++ reads or changes them).
        in_flight = self.bytes_in_flight
        recovery_start = self.recovery_start_time
        for record in records:
            if not record.in_flight:
                continue
            size = record.size
            assert in_flight >= size, "bytes in flight would go negative"  # recovery hands each record over once
            in_flight -= size
            if recovery_start is not None and record.time_sent <= recovery_start:
                continue  # §7.3.2: no growth for packets sent before recovery began (in_congestion_recovery)
            if hystart is not None and self.congestion_window < self.ssthresh:  # in slow start
                hystart.on_acked(record.time_sent, now)
            self._in_recovery = False
            # §7.8: don't grow a window that isn't being used.
            if cwnd_limited:
                self._grow(record, now)
        self.bytes_in_flight = self._peak_in_flight = in_flight

    def on_packets_lost(self, records: Iterable[SentRecord], now: float) -> None:
        """Lost records (RFC 9002 §A.6 OnPacketsLost): remove them from flight
        and start a recovery period if the newest was sent after the last one
        began."""
        sent_time_of_last_loss: float | None = None
        for record in records:
            if not record.in_flight:
                continue
            self._remove_in_flight(record.size)
            if sent_time_of_last_loss is None or record.time_sent > sent_time_of_last_loss:
                sent_time_of_last_loss = record.time_sent
        if sent_time_of_last_loss is not None:
            self.on_congestion_event(sent_time_of_last_loss, now)

    def on_packets_discarded(self, records: Iterable[SentRecord]) -> None:
        """Records dropped with their keys (§6.4): no congestion signal."""
        for record in records:
            if record.in_flight:
                self._remove_in_flight(record.size)

    def on_congestion_event(self, sent_time: float, now: float) -> None:
        """A loss or an ECN-CE report for a packet sent at `sent_time` (§7.3.2)."""
        if self.in_congestion_recovery(sent_time):
            return  # one reduction per round trip
        self.recovery_start_time = now
        self._in_recovery = True
        self._recovery_packet_allowed = True
        self.congestion_events += 1
        self._undo = (self.congestion_events, self.congestion_window, self.ssthresh, self._undo_state())
        self._reduce(now)

    def undo_congestion_event(self, event: int) -> bool:
        """RFC 9438 §4.9: congestion event number `event` was spurious (every
        packet it was declared for arrived after all): back to the state
        before it, if no other event came since.  True if undone."""
        saved = self._undo
        if saved is None or saved[0] != event or event != self.congestion_events:
            return False
        _, cwnd, ssthresh, state = saved
        self.congestion_window = max(self.congestion_window, cwnd)
        self.ssthresh = ssthresh
        self._restore_state(state)
        self.recovery_start_time = None
        self._in_recovery = False
        self._undo = None
        self.undone_events += 1
        return True

    def _slow_start(self, record: SentRecord) -> None:
        """Slow-start growth for one acked record: every byte (RFC 9002
        §7.3.1), or HyStart++'s share; slow start ends when it says so."""
        if not self.use_hystart:
            self.congestion_window += record.size
            return
        hystart = self.hystart
        self.congestion_window += hystart.increase(record.size)
        if hystart.done:
            self.ssthresh = self.congestion_window  # RFC 9406 §4.2: on to congestion avoidance

    def on_persistent_congestion(self, now: float | None = None) -> None:
        """RFC 9002 §7.6.2: collapse to the minimum window and leave recovery."""
        self.congestion_window = self.minimum_window
        self.recovery_start_time = None
        self._in_recovery = False
        self._recovery_packet_allowed = False
        self._undo = None  # not undone by a late acknowledgment
        self._on_collapse()

    def on_rtt_update(self, smoothed_rtt: float, min_rtt: float, now: float) -> None:
        """A new RTT estimate; controllers that need it keep it."""

    def on_rtt_sample(self, latest_rtt: float, now: float) -> None:
        """One RTT sample (RFC 9002 §5.1): HyStart++ watches them in slow start."""
        if self.use_hystart and self.in_slow_start:
            self.hystart.on_rtt_sample(latest_rtt)

    # -- what a controller defines --------------------------------------

    @abstractmethod
    def _grow(self, record: SentRecord, now: float) -> None:
        """Increase the window for one acked in-flight record (not in recovery)."""

    @abstractmethod
    def _reduce(self, now: float) -> None:
        """Multiplicative decrease on entering recovery; sets ssthresh."""

    def _on_collapse(self) -> None:
        """Hook after persistent congestion collapsed the window."""

    def _undo_state(self) -> tuple:
        """What a controller keeps of its own to undo a reduction (hook)."""
        return ()

    def _restore_state(self, state: tuple) -> None:
        """Back to what _undo_state returned (hook)."""

    def _on_ack_batch(self, now: float, cwnd_limited: bool) -> None:
        """Hook at the start of each batch of acked records."""

    def _remove_in_flight(self, size: int) -> None:
        # Recovery hands each record over exactly once; a negative count
        # would be a bug there, not a peer's doing.
        assert self.bytes_in_flight >= size, "bytes in flight would go negative"
        self.bytes_in_flight -= size

    def log_data(self) -> dict[str, float]:
        data: dict[str, float] = {
            "congestion_window": self.congestion_window,
            "bytes_in_flight": self.bytes_in_flight,
        }
        if self.ssthresh != float("inf"):
            data["ssthresh"] = self.ssthresh
        return data


ControllerFactory = Callable[..., CongestionController]
_REGISTRY: dict[str, ControllerFactory] = {}


def register_congestion_controller(name: str, factory: ControllerFactory) -> None:
    _REGISTRY[name] = factory


def available_congestion_controllers() -> list[str]:
    return sorted(_REGISTRY)


def create_congestion_controller(name: str, *, max_datagram_size: int = 1200) -> CongestionController:
    """The controller registered as `name`; UsageError if there is none."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown congestion controller {name!r} (have {', '.join(available_congestion_controllers())})"
        ) from None
    return factory(max_datagram_size=max_datagram_size)
