# pyquic.congestion and pyquic.pacing: window bounds (RFC 9002 §7.2), the
# NewReno trajectory (slow start -> loss -> recovery -> congestion avoidance),
# the app-limited rule (§7.8), CUBIC's K and W_cubic worked from RFC 9438's
# formulas, fast convergence, the Reno-friendly region, the registry, and
# the pacer's rate and burst (§7.7).
from dataclasses import dataclass

import pytest

from pyquic.congestion import (
    CubicController,
    NewRenoController,
    available_congestion_controllers,
    create_congestion_controller,
    initial_window,
    minimum_window,
)
from pyquic.congestion.cubic import CUBIC_ALPHA, CUBIC_BETA, CUBIC_C, cubic_k, w_cubic
from pyquic.errors import UsageError
from pyquic.pacing import BURST_PACKETS, PACING_GAIN, Pacer

MDS = 1200


@dataclass
class Rec:
    size: int
    time_sent: float
    in_flight: bool = True


class Flow:
    """Drives a controller with whole-window rounds of full-sized packets:
    send until the window is full at `now`, then ack them all one RTT later;
    the next round's packets leave a millisecond after that ACK."""

    def __init__(self, cc, rtt=0.1, now=0.0):
        self.cc, self.rtt, self.now = cc, rtt, now
        cc.on_rtt_update(rtt, rtt, now)

    def fill(self, limit=None):
        sent = []
        while self.cc.can_send(MDS) and (limit is None or len(sent) < limit):
            self.cc.on_packet_sent(MDS, self.now)
            sent.append(Rec(MDS, self.now))
        return sent

    def round(self, lose=0, limit=None):
        sent = self.fill(limit)
        self.now += self.rtt
        if lose:
            self.cc.on_packets_lost(sent[:lose], self.now)
        self.cc.on_packets_acked(sent[lose:], self.now)
        self.now += 0.001
        return len(sent)


# -- window bounds and registry -------------------------------------------------


@pytest.mark.parametrize(
    "mds, window",
    [(1200, 12000), (1472, 14720), (1500, 14720), (9000, 18000)],
)
def test_initial_window(mds, window):
    # RFC 9002 §7.2: min(10 * mds, max(14720, 2 * mds)).
    assert initial_window(mds) == window
    assert minimum_window(mds) == 2 * mds
    for name in ("reno", "cubic"):
        assert create_congestion_controller(name, max_datagram_size=mds).congestion_window == window


def test_registry():
    assert {"reno", "cubic"} <= set(available_congestion_controllers())
    assert isinstance(create_congestion_controller("reno"), NewRenoController)
    assert isinstance(create_congestion_controller("cubic"), CubicController)
    with pytest.raises(UsageError, match="unknown congestion controller"):
        create_congestion_controller("bbr9")


# -- NewReno (RFC 9002 §7.3) ---------------------------------------------------


def test_newreno_trajectory():
    cc = NewRenoController(max_datagram_size=MDS)
    flow = Flow(cc)
    # §7.3.1 slow start: the window doubles every round.
    assert flow.round() == 10 and cc.congestion_window == 24000
    assert flow.round() == 20 and cc.congestion_window == 48000
    assert cc.in_slow_start and not cc.in_recovery

    # A loss: §7.3.2 halves the window, ssthresh with it; the packets acked
    # in the same ACK were sent before recovery began, so they don't grow it.
    assert flow.round(lose=1) == 40
    assert cc.ssthresh == 24000 and cc.congestion_window == 24000
    assert cc.in_recovery and cc.bytes_in_flight == 0

    # A second loss in the same period (sent before it began) changes nothing.
    cc.on_packets_lost([Rec(0, flow.now - 0.05, True)], flow.now + 0.01)
    assert cc.congestion_window == 24000

    # §7.3.3 congestion avoidance: one datagram per window acked; the first
    # ACK of a packet sent after recovery began ends the period.
    assert flow.round() == 20
    assert not cc.in_recovery and not cc.in_slow_start
    assert cc.congestion_window == 24000 + MDS
    flow.round()  # 21 packets: 25200 acked -> +1200
    assert cc.congestion_window == 24000 + 2 * MDS

    # A loss after recovery ended starts a new period.
    flow.round(lose=1)
    assert cc.congestion_window == (24000 + 2 * MDS) // 2
    cc.on_persistent_congestion()
    assert cc.congestion_window == 2 * MDS and not cc.in_recovery


def test_newreno_window_never_below_minimum():
    cc = NewRenoController(max_datagram_size=MDS)
    for i in range(10):
        cc.on_packet_sent(MDS)
        cc.on_packets_lost([Rec(MDS, float(i) + 0.5)], float(i + 1))
    assert cc.congestion_window == 2 * MDS
    assert cc.bytes_in_flight == 0


def test_one_packet_may_exceed_the_window_on_entering_recovery():
    cc = NewRenoController(max_datagram_size=MDS)
    sent = Flow(cc).fill()
    assert not cc.can_send(MDS)
    cc.on_packets_lost(sent[:1], 0.1)
    assert cc.bytes_in_flight > cc.congestion_window
    assert cc.can_send(MDS)  # §7.3.2: one packet to speed up recovery
    cc.on_packet_sent(MDS, 0.1)
    assert not cc.can_send(MDS)


def test_no_growth_when_app_limited():
    cc = NewRenoController(max_datagram_size=MDS)
    flow = Flow(cc)
    flow.round(limit=3)  # 3 of 10 packets: the window wasn't the limit
    assert cc.congestion_window == 12000
    flow.round()
    assert cc.congestion_window == 24000
    cc.app_limited = True  # the connection says so itself
    flow.round()
    assert cc.congestion_window == 24000


def test_discarded_packets_leave_flight_without_a_signal():
    cc = NewRenoController(max_datagram_size=MDS)
    sent = Flow(cc).fill()
    cc.on_packets_discarded(sent + [Rec(99, 0.0, in_flight=False)])
    assert cc.bytes_in_flight == 0 and cc.congestion_window == 12000 and not cc.in_recovery


# -- CUBIC (RFC 9438) ----------------------------------------------------------


def test_cubic_k_and_w_cubic_hand_computed():
    # W_max = 100 datagrams, a loss leaves cwnd_epoch = beta * W_max = 70.
    # K = cbrt((100 - 70) / 0.4) = cbrt(75) = 4.2171633...  (4.2171633^3 = 75)
    k = cubic_k(100, 70)
    assert k == pytest.approx(4.2171633, abs=1e-7)
    assert k == pytest.approx(((100 - 100 * CUBIC_BETA) / CUBIC_C) ** (1 / 3))
    # W_cubic(0) = 0.4 * (-75) + 100 = 70; W_cubic(K) = W_max; one second
    # later 0.4 * 1^3 more; two seconds before K: 0.4 * (-8) + 100 = 96.8.
    assert w_cubic(0, k, 100) == pytest.approx(70)
    assert w_cubic(k, k, 100) == pytest.approx(100)
    assert w_cubic(k + 1, k, 100) == pytest.approx(100.4)
    assert w_cubic(k - 2, k, 100) == pytest.approx(96.8)
    # cwnd_epoch above W_max (possible after fast convergence): negative K.
    assert cubic_k(10, 11.35) == pytest.approx(-1.5)  # -1.35 / 0.4 = -3.375 = (-1.5)^3
    # alpha_cubic = 3 (1 - 0.7) / (1 + 0.7) = 0.9 / 1.7
    assert CUBIC_ALPHA == pytest.approx(0.5294117647)


def _cubic_after_loss(w_max_packets=100, rtt=0.1):
    cc = CubicController(max_datagram_size=MDS)
    cc.congestion_window = w_max_packets * MDS
    flow = Flow(cc, rtt=rtt)
    flow.round(lose=1)
    return cc, flow


def test_cubic_multiplicative_decrease_and_fast_convergence():
    cc, flow = _cubic_after_loss()
    # §4.6: cwnd = ssthresh = 0.7 * 120000; §4.7: W_max = the window before.
    assert cc.congestion_window == cc.ssthresh == 84000
    assert cc.w_max == 120000
    # Another loss below W_max: fast convergence, W_max = cwnd (1 + 0.7) / 2.
    flow.round()  # leave recovery
    cwnd = cc.congestion_window
    flow.round(lose=1)
    assert cc.w_max == pytest.approx(cwnd * 1.7 / 2)
    assert cc.congestion_window == int(cwnd * 0.7)


def test_cubic_follows_w_cubic_to_w_max_in_about_k_seconds():
    cc, flow = _cubic_after_loss(rtt=0.1)
    k = cubic_k(100, 70)
    flow.round()  # ends recovery; the epoch starts with the first growth
    start = flow.now
    assert cc.k == pytest.approx(k)
    previous = cc.congestion_window
    while flow.now - start < k:
        flow.round()
        # §4.2: the target is clamped to 1.5 * cwnd per RTT.
        assert previous <= cc.congestion_window <= 1.5 * previous
        previous = cc.congestion_window
        t = cc.epoch_elapsed
        # Concave region: cwnd tracks W_cubic(t + RTT) (reached within one
        # round, so no higher than it and not lower than W_cubic(t)).
        assert w_cubic(t, k, 100) - 1 <= cc.congestion_window / MDS <= w_cubic(t + 0.1, k, 100) + 0.01
    assert cc.congestion_window / MDS == pytest.approx(100, abs=1.0)
    # Past K the convex region probes above W_max; by now Reno's line W_est
    # has caught up too, and the window follows whichever is larger.
    for _ in range(20):
        flow.round()
        expected = max(w_cubic(cc.epoch_elapsed + 0.1, k, 100), cc.w_est / MDS)
        assert cc.congestion_window / MDS == pytest.approx(expected, rel=0.01)
    assert cc.congestion_window > 105 * MDS


def test_cubic_reno_friendly_region_on_short_rtt():
    # With a 10 ms RTT Reno's line (W_est, +alpha per RTT) outgrows W_cubic.
    cc, flow = _cubic_after_loss(rtt=0.01)
    flow.round()
    k = cubic_k(100, 70)
    for _ in range(60):
        before = cc.w_est
        flow.round()
        grown = (cc.w_est - before) / MDS
        if before < cc.cwnd_prior <= cc.w_est:
            continue  # alpha switched mid-round
        alpha = CUBIC_ALPHA if before < cc.cwnd_prior else 1.0
        # Each round acks about one window: W_est grows about alpha datagrams.
        assert 0.95 * alpha <= grown <= alpha + 1e-9
    assert w_cubic(cc.epoch_elapsed, k, 100) * MDS < cc.w_est
    assert cc.congestion_window == int(cc.w_est)
    # §4.3: alpha became 1 once W_est passed the window before the loss.
    assert cc.w_est > cc.cwnd_prior


def test_cubic_app_limited_freezes_growth_and_the_epoch_clock():
    cc, flow = _cubic_after_loss()
    flow.round()
    flow.round()
    cwnd, elapsed = cc.congestion_window, cc.epoch_elapsed
    for _ in range(10):
        flow.round(limit=5)
    assert cc.congestion_window == cwnd and cc.epoch_elapsed == elapsed
    # Idle (nothing in flight) doesn't count either.
    flow.now += 30.0
    flow.round()
    assert cc.epoch_elapsed == pytest.approx(elapsed + 0.1)
    assert cc.congestion_window <= 1.5 * cwnd


def test_cubic_after_persistent_congestion_restarts_with_k_zero():
    cc, flow = _cubic_after_loss()
    flow.round()
    cc.on_persistent_congestion()
    assert cc.congestion_window == 2 * MDS
    while cc.in_slow_start:
        flow.round()
    flow.round()
    assert cc.k == 0.0 and cc.w_max == cc.cwnd_epoch


# -- pacing (RFC 9002 §7.7) --------------------------------------------------------


def test_pacer_rate_and_burst():
    pacer = Pacer(max_datagram_size=MDS)
    assert pacer.next_send_time(0.0) == 0.0  # no rate yet: no pacing
    pacer.update_rate(congestion_window=120000, smoothed_rtt=0.1)
    rate = PACING_GAIN * 120000 / 0.1
    assert pacer.rate == pytest.approx(rate)  # 1.5 MB/s
    now = 1.0
    # A full bucket passes BURST_PACKETS datagrams at once (one GSO batch).
    assert pacer.burst_size(now) == BURST_PACKETS
    for _ in range(BURST_PACKETS):
        assert pacer.next_send_time(now) == now
        pacer.on_sent(MDS, now)
    assert pacer.burst_size(now) == 0
    # Then one datagram every MDS / rate seconds.
    gap = MDS / rate
    assert pacer.next_send_time(now) == pytest.approx(now + gap)
    now += gap
    assert pacer.next_send_time(now) == pytest.approx(now)
    pacer.on_sent(MDS, now)
    # A long pause refills the bucket only up to the burst.
    now += 10.0
    assert pacer.burst_size(now) == BURST_PACKETS


def test_pacer_small_packets_and_tiny_rtt():
    pacer = Pacer(max_datagram_size=MDS, burst_packets=2)
    pacer.update_rate(12000, 0.0)  # a zero RTT must not divide by zero
    assert pacer.rate > 0
    pacer.update_rate(12000, 0.1)
    for _ in range(2):
        pacer.on_sent(MDS, 0.0)
    assert pacer.next_send_time(0.0, size=100) == pytest.approx(100 / pacer.rate)
    assert pacer.next_send_time(0.0) == pytest.approx(MDS / pacer.rate)


def test_recovery_feeds_the_pacer():
    from pyquic.recovery import LossRecovery, PacketNumberSpace, SentPacket

    rec = LossRecovery(is_client=False)
    rec.on_handshake_confirmed(0.0)
    rec.on_packet_sent(SentPacket(PacketNumberSpace.APPLICATION, 0, 0.0, MDS))
    rec.on_ack_received(PacketNumberSpace.APPLICATION, [(0, 1)], 0.0, 0.05)
    assert rec.pacer.rate == pytest.approx(PACING_GAIN * rec.congestion_window / 0.05)
