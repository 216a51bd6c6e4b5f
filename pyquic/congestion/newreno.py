# NewReno as RFC 9002 §7 specifies it for QUIC: slow start (the window grows
# by every acked byte), congestion avoidance (one datagram per window acked),
# a halving on entering recovery, and the minimum window after persistent
# congestion.  The recovery period and app-limited rules live in base.py.
from __future__ import annotations

from .base import CongestionController, SentRecord, register_congestion_controller

# RFC 9002 §7.3.2 / §B.2: kLossReductionFactor.
K_LOSS_REDUCTION_FACTOR = 0.5


class NewRenoController(CongestionController):
    name = "reno"

    def __init__(self, *, max_datagram_size: int = 1200) -> None:
        super().__init__(max_datagram_size=max_datagram_size)
        # Acked bytes not yet turned into window growth in congestion
        # avoidance (§7.3.3 allows counting bytes this way).
        self._bytes_acked = 0

    def _grow(self, record: SentRecord, now: float) -> None:
        if self.in_slow_start:
            # §7.3.1: increase by the number of bytes acknowledged (HyStart++ may slow it).
            self._slow_start(record)
            return
        # §7.3.3: at most one max_datagram_size per congestion window acked.
        self._bytes_acked += record.size
        if self._bytes_acked >= self.congestion_window:
            self._bytes_acked -= self.congestion_window
            self.congestion_window += self.max_datagram_size

    def _reduce(self, now: float) -> None:
        # §7.3.2: ssthresh = cwnd * kLossReductionFactor; the window goes
        # there, but never below the minimum window.
        self.ssthresh = int(self.congestion_window * K_LOSS_REDUCTION_FACTOR)
        self.congestion_window = max(self.ssthresh, self.minimum_window)
        self._bytes_acked = 0

    def _on_collapse(self) -> None:
        self._bytes_acked = 0

    def _undo_state(self) -> tuple:
        return (self._bytes_acked,)

    def _restore_state(self, state: tuple) -> None:
        (self._bytes_acked,) = state


register_congestion_controller("reno", NewRenoController)
register_congestion_controller("newreno", NewRenoController)
