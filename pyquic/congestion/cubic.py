# CUBIC (RFC 9438) on the shared controller of base.py: the cubic window
# W_cubic(t) = C*(t - K)^3 + W_max with K = cbrt((W_max - cwnd_epoch)/C)
# (§4.2, in datagrams), the target clamp [cwnd, 1.5*cwnd] at t + RTT, the
# Reno-friendly estimate W_est (§4.3), multiplicative decrease by beta = 0.7
# (§4.6), fast convergence (§4.7), the epoch clock that stops while the
# window is not the limit (§5.8: app-limited or idle), and the state an undo
# of a spurious reduction returns to (§4.9, base.py decides when).  Slow
# start is Reno's with HyStart++ (§4.10, RFC 9406: base.py, hystart.py).
from __future__ import annotations

import math

from .base import CongestionController, SentRecord, register_congestion_controller

# RFC 9438 §5: the constants.
CUBIC_C = 0.4  # datagrams / second^3
CUBIC_BETA = 0.7
# §4.3: Reno's additive increase, adjusted to CUBIC's beta.
CUBIC_ALPHA = 3 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA)
# §4.2: the target is never more than 1.5 times the window.
MAX_TARGET_RATIO = 1.5


def cubic_k(w_max: float, cwnd_epoch: float, c: float = CUBIC_C) -> float:
    """RFC 9438 §4.2 eq. 2, in datagrams: the time for W_cubic to reach W_max."""
    x = (w_max - cwnd_epoch) / c
    return math.copysign(abs(x) ** (1.0 / 3.0), x)


def w_cubic(t: float, k: float, w_max: float, c: float = CUBIC_C) -> float:
    """RFC 9438 §4.2 eq. 1, in datagrams."""
    return c * (t - k) ** 3 + w_max


class CubicController(CongestionController):
    name = "cubic"

    def __init__(self, *, max_datagram_size: int = 1200) -> None:
        super().__init__(max_datagram_size=max_datagram_size)
        # Kept in bytes; converted to datagrams for the cubic formulas.
        self.w_max: float | None = None  # None: no loss yet, or after a collapse
        self.cwnd_prior: float | None = None
        self.k = 0.0
        self.w_est = 0.0
        self.cwnd_epoch = 0
        self.epoch_started = False
        # Time in congestion avoidance that counts for t: advanced only over
        # intervals in which the window was the limit (§5.8).
        self.epoch_elapsed = 0.0
        self._last_ack_time: float | None = None
        self._smoothed_rtt = 0.0
        self._carry = 0.0  # fractional window growth not yet applied

    # -- RFC 9438 in bytes -------------------------------------------------

    def w_cubic_bytes(self, t: float) -> float:
        assert self.w_max is not None
        mds = self.max_datagram_size
        return w_cubic(t, self.k, self.w_max / mds) * mds

    def _start_epoch(self) -> None:
        mds = self.max_datagram_size
        self.epoch_started = True
        self.epoch_elapsed = 0.0
        self.cwnd_epoch = self.congestion_window
        self.w_est = float(self.congestion_window)
        if self.w_max is None:
            # §4.8/§4.10: no W_max to return to (first slow start ended
            # without loss, or after a timeout): W_max = cwnd now, K = 0.
            self.w_max = float(self.congestion_window)
            self.k = 0.0
        else:
            self.k = cubic_k(self.w_max / mds, self.cwnd_epoch / mds)

    # -- controller hooks --------------------------------------------------

    def on_packet_sent(self, size: int, now: float | None = None) -> None:
        if self.bytes_in_flight == 0 and now is not None:
            # Sending resumes after idle: the idle time must not count for t
            # (§5.8), so restart the interval clock here.
            self._last_ack_time = now
        super().on_packet_sent(size, now)

    def on_rtt_update(self, smoothed_rtt: float, min_rtt: float, now: float) -> None:
        self._smoothed_rtt = smoothed_rtt

    def _on_ack_batch(self, now: float, cwnd_limited: bool) -> None:
        if self._last_ack_time is not None and self.epoch_started and cwnd_limited:
            self.epoch_elapsed += max(0.0, now - self._last_ack_time)
        self._last_ack_time = now

    def _grow(self, record: SentRecord, now: float) -> None:
        if self.in_slow_start:
            self._slow_start(record)  # §4.10: standard slow start, or HyStart++
            return
        if not self.epoch_started:
            self._start_epoch()
        assert self.w_max is not None
        mds = self.max_datagram_size
        cwnd = self.congestion_window
        t = self.epoch_elapsed

        # §4.3: W_est grows like Reno with alpha_cubic, or alpha 1 once it
        # reached the window before the last reduction.
        alpha = CUBIC_ALPHA if self.cwnd_prior is not None and self.w_est < self.cwnd_prior else 1.0
        self.w_est += alpha * mds * record.size / cwnd

        if self.w_cubic_bytes(t) < self.w_est:
            # §4.3: Reno-friendly region: cwnd = W_est (never shrinking on an
            # ACK, should the cubic lookahead have taken cwnd above it).
            self.congestion_window = max(cwnd, int(self.w_est))
            return

        # §4.4/§4.5: concave and convex regions: move towards the target
        # W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd], by
        # (target - cwnd)/cwnd per acked datagram.
        target = min(max(self.w_cubic_bytes(t + self._smoothed_rtt), cwnd), MAX_TARGET_RATIO * cwnd)
        growth = (target - cwnd) * record.size / cwnd + self._carry
        whole = int(growth)
        self._carry = growth - whole
        self.congestion_window = cwnd + whole

    def _reduce(self, now: float) -> None:
        cwnd = self.congestion_window
        # §4.7: fast convergence: if the window didn't regain the previous
        # W_max, release bandwidth by remembering a lower one.
        if self.w_max is not None and cwnd < self.w_max:
            self.w_max = cwnd * (1 + CUBIC_BETA) / 2
        else:
            self.w_max = float(cwnd)
        self.cwnd_prior = float(cwnd)
        # §4.6: ssthresh = cwnd * beta, at least two datagrams (RFC 9438
        # allows cwnd in place of flight size); the window goes there.
        self.ssthresh = max(int(cwnd * CUBIC_BETA), self.minimum_window)
        self.congestion_window = self.ssthresh
        self.epoch_started = False
        self._carry = 0.0

    def _undo_state(self) -> tuple:
        return (self.w_max, self.cwnd_prior, self.k, self.w_est, self.cwnd_epoch, self.epoch_started,
                self.epoch_elapsed, self._carry)

    def _restore_state(self, state: tuple) -> None:
        (self.w_max, self.cwnd_prior, self.k, self.w_est, self.cwnd_epoch, self.epoch_started,
         self.epoch_elapsed, self._carry) = state

    def _on_collapse(self) -> None:
        # §4.8: after a timeout the next congestion avoidance starts with
        # K = 0 and W_max = the window at its start.
        self.w_max = None
        self.epoch_started = False
        self._carry = 0.0

    def log_data(self) -> dict[str, float]:
        data = super().log_data()
        if self.w_max is not None:
            data["cubic_w_max"] = self.w_max
        return data


register_congestion_controller("cubic", CubicController)
