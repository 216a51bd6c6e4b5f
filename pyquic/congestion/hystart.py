# HyStart++ (RFC 9406): leaving slow start before the first loss.  Owns one
# controller's slow-start rounds and their minimum RTTs: when a round's RTT
# rises by a threshold over the previous round's (queues are building), slow
# start turns conservative (the window grows a quarter as fast); if the RTT
# falls back, slow start resumes; after CSS_ROUNDS conservative rounds slow
# start ends without a loss.  Rounds are told apart by send times (the
# controller sees no packet numbers): a round ends when a packet sent after
# it began is acknowledged.  Samples and times come in; nothing is read here.
#
#   hystart = HyStart()
#   hystart.on_acked(record.time_sent, now)     # each acked in-flight packet, in slow start
#   hystart.on_rtt_sample(latest_rtt)           # each RTT sample, in slow start
#   cwnd += hystart.increase(record.size)       # the slow-start growth for it
#   if hystart.done: ssthresh = cwnd            # slow start is over
from __future__ import annotations

from typing import Optional

__all__ = ["HyStart", "MIN_RTT_THRESH", "MAX_RTT_THRESH", "N_RTT_SAMPLE", "CSS_GROWTH_DIVISOR", "CSS_ROUNDS"]

# RFC 9406 §4.3: the constants (seconds; counts).
MIN_RTT_THRESH = 0.004
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5

_INF = float("inf")


class HyStart:
    __slots__ = ("round_start", "last_round_min_rtt", "current_round_min_rtt", "rtt_sample_count",
                 "css_baseline_min_rtt", "css_rounds", "done", "css_entries")

    def __init__(self) -> None:
        self.round_start: Optional[float] = None  # packets sent at or after it belong to the next round
        self.last_round_min_rtt = _INF
        self.current_round_min_rtt = _INF
        self.rtt_sample_count = 0
        self.css_baseline_min_rtt: Optional[float] = None  # set while in Conservative Slow Start
        self.css_rounds = 0
        self.done = False  # slow start should end now (ssthresh = cwnd)
        self.css_entries = 0  # how often CSS began (tests and qlog read it)

    @property
    def in_css(self) -> bool:
        return self.css_baseline_min_rtt is not None

    def on_acked(self, time_sent: float, now: float) -> None:
        """An acknowledged packet sent at `time_sent`: a new round once one sent
        after the current round began is acknowledged (§4.2, windowEnd)."""
        if self.round_start is not None and time_sent < self.round_start:
            return
        self.round_start = now
        self.last_round_min_rtt = self.current_round_min_rtt
        self.current_round_min_rtt = _INF
        self.rtt_sample_count = 0
        if self.in_css:
            self.css_rounds += 1
            if self.css_rounds >= CSS_ROUNDS:
                self.done = True  # §4.2: enter congestion avoidance

    def on_rtt_sample(self, latest_rtt: float) -> None:
        self.current_round_min_rtt = min(self.current_round_min_rtt, latest_rtt)
        self.rtt_sample_count += 1
        if self.rtt_sample_count < N_RTT_SAMPLE or self.last_round_min_rtt == _INF:
            return
        if not self.in_css:
            threshold = min(max(self.last_round_min_rtt / MIN_RTT_DIVISOR, MIN_RTT_THRESH), MAX_RTT_THRESH)
            if self.current_round_min_rtt >= self.last_round_min_rtt + threshold:
                self.css_baseline_min_rtt = self.current_round_min_rtt
                self.css_rounds = 0
                self.css_entries += 1
        elif self.current_round_min_rtt < self.css_baseline_min_rtt:
            # §4.2: the RTT came back down: the rise was spurious; slow start again.
            self.css_baseline_min_rtt = None

    def increase(self, acked: int) -> int:
        """The window increase for `acked` bytes: all of them in slow start, a
        quarter in CSS (paced sending needs no burst limit L, §4.2)."""
        return acked // CSS_GROWTH_DIVISOR if self.in_css else acked
