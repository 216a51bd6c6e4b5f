# pyquic.recovery (RFC 9002): RTT estimation (§5), loss by packet and time
# threshold (§6.1), PTO values, backoff and the anti-deadlock rule (§6.2),
# discarding spaces (§6.4), persistent congestion (§7.6), ECN validation,
# and a property test that random ACKs, losses and timeouts keep the books
# (bytes in flight = the sum of in-flight records) straight.
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyquic.congestion.base import K_GRANULARITY
from pyquic.errors import ErrorCode, TransportError, UsageError
from pyquic.recovery import (
    ACK_ONLY_ELICIT_THRESHOLD,
    K_INITIAL_RTT,
    K_TIME_THRESHOLD,
    PTO_PROBE_PACKETS,
    AckOutcome,
    LossRecovery,
    PacketNumberSpace,
    PacketsLost,
    ProbeNeeded,
    RttEstimator,
    SentPacket,
)

INITIAL = PacketNumberSpace.INITIAL
HANDSHAKE = PacketNumberSpace.HANDSHAKE
APP = PacketNumberSpace.APPLICATION
MDS = 1200


def send(rec, space, pn, t, *, size=MDS, ack_eliciting=True, in_flight=None, ecn=False):
    packet = SentPacket(
        space=space,
        packet_number=pn,
        time_sent=t,
        size=size,
        ack_eliciting=ack_eliciting,
        in_flight=ack_eliciting if in_flight is None else in_flight,
        frames=[("tag", space, pn)],
        ecn=ecn,
    )
    rec.on_packet_sent(packet)
    return packet


def pns(records):
    return [p.packet_number for p in records]


def confirmed_server(**kw):
    rec = LossRecovery(is_client=False, **kw)
    rec.on_handshake_confirmed(0.0)
    return rec


# -- RTT estimation (§5) ------------------------------------------------------


def test_rtt_defaults_before_any_sample():
    rtt = RttEstimator()
    assert rtt.smoothed_rtt == K_INITIAL_RTT
    assert rtt.rttvar == K_INITIAL_RTT / 2
    assert not rtt.has_sample
    # §6.2.2: the initial PTO is about one second: 333 + 4 * 166.5 ms.
    assert rtt.pto_base() == pytest.approx(0.999)


def test_first_rtt_sample_ignores_ack_delay():
    rec = confirmed_server()
    send(rec, APP, 0, 1.0)
    out = rec.on_ack_received(APP, [(0, 1)], ack_delay=0.02, now=1.1)
    assert out.rtt_sampled and pns(out.acked) == [0]
    assert rec.rtt.latest_rtt == pytest.approx(0.1)
    assert rec.rtt.min_rtt == pytest.approx(0.1)
    assert rec.rtt.smoothed_rtt == pytest.approx(0.1)
    assert rec.rtt.rttvar == pytest.approx(0.05)
    assert rec.rtt.first_sample_time == 1.1


def test_second_sample_subtracts_ack_delay():
    rtt = RttEstimator()
    rtt.update(0.100, 0.0, 1.0, handshake_confirmed=True, max_ack_delay=0.025)
    rtt.update(0.120, 0.010, 2.0, handshake_confirmed=True, max_ack_delay=0.025)
    # adjusted = 0.120 - 0.010 = 0.110
    assert rtt.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * abs(0.100 - 0.110))
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.100 + 0.125 * 0.110)
    assert rtt.min_rtt == pytest.approx(0.100)  # min_rtt never adjusted


def test_ack_delay_not_subtracted_below_min_rtt():
    rtt = RttEstimator()
    rtt.update(0.100, 0.0, 1.0, handshake_confirmed=True, max_ack_delay=0.025)
    rtt.update(0.105, 0.010, 2.0, handshake_confirmed=True, max_ack_delay=0.025)
    # 0.105 < min_rtt + ack_delay = 0.110: the sample is used as is.
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.100 + 0.125 * 0.105)


def test_ack_delay_capped_by_max_ack_delay_only_after_confirmation():
    capped, uncapped = RttEstimator(), RttEstimator()
    for rtt, confirmed in ((capped, True), (uncapped, False)):
        rtt.update(0.100, 0.0, 1.0, handshake_confirmed=confirmed, max_ack_delay=0.025)
        rtt.update(0.300, 0.150, 2.0, handshake_confirmed=confirmed, max_ack_delay=0.025)
    assert capped.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * (0.300 - 0.025))
    assert uncapped.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * (0.300 - 0.150))


def test_initial_space_ignores_ack_delay():
    rec = LossRecovery(is_client=True)
    send(rec, INITIAL, 0, 0.0)
    rec.on_ack_received(INITIAL, [(0, 1)], 0.0, 0.1)
    send(rec, INITIAL, 1, 1.0)
    rec.on_ack_received(INITIAL, [(0, 2)], ack_delay=0.05, now=1.2)
    assert rec.rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)


def test_handshake_space_uses_uncapped_ack_delay_before_confirmation():
    rec = LossRecovery(is_client=True)
    send(rec, HANDSHAKE, 0, 0.0)
    rec.on_ack_received(HANDSHAKE, [(0, 1)], 0.0, 0.1)
    send(rec, HANDSHAKE, 1, 1.0)
    rec.on_ack_received(HANDSHAKE, [(0, 2)], ack_delay=0.05, now=1.2)
    assert rec.rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.15)


def test_no_rtt_sample_unless_largest_is_newly_acked_and_ack_eliciting():
    rec = confirmed_server()
    send(rec, APP, 0, 0.0)
    send(rec, APP, 1, 0.0)
    rec.on_ack_received(APP, [(1, 2)], 0.0, 0.1)
    assert rec.rtt.smoothed_rtt == pytest.approx(0.1)
    # Packet 0 acked late, with the largest (1) already acked: no sample.
    out = rec.on_ack_received(APP, [(0, 2)], 0.0, 0.5)
    assert pns(out.acked) == [0] and not out.rtt_sampled
    assert rec.rtt.latest_rtt == pytest.approx(0.1)
    # The largest newly acked but only an ACK-only packet: no sample either.
    send(rec, APP, 2, 1.0, ack_eliciting=False)
    out = rec.on_ack_received(APP, [(0, 3)], 0.0, 1.9)
    assert pns(out.acked) == [2] and not out.rtt_sampled


def test_duplicate_ack_changes_nothing():
    rec = confirmed_server()
    send(rec, APP, 0, 0.0)
    rec.on_ack_received(APP, [(0, 1)], 0.0, 0.1)
    out = rec.on_ack_received(APP, [(0, 1)], 0.0, 0.2)
    assert out == AckOutcome([], [])
    assert rec.rtt.latest_rtt == pytest.approx(0.1)


def test_ack_of_unsent_packet_is_invalid():
    rec = confirmed_server()
    send(rec, APP, 0, 0.0)
    with pytest.raises(TransportError) as info:
        rec.on_ack_received(APP, [(0, 2)], 0.0, 0.1)
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION and info.value.frame_type == 0x02
    with pytest.raises(TransportError) as info:
        rec.on_ack_received(HANDSHAKE, [(0, 1)], 0.0, 0.1, ecn_counts=(0, 0, 0))
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION and info.value.frame_type == 0x03


def test_packet_numbers_must_increase():
    rec = confirmed_server()
    send(rec, APP, 5, 0.0)
    with pytest.raises(UsageError):
        send(rec, APP, 5, 0.0)


# -- loss detection (§6.1) ----------------------------------------------------


def test_packet_threshold_and_time_threshold():
    rec = confirmed_server()
    for pn in range(5):
        send(rec, APP, pn, pn * 0.001)
    out = rec.on_ack_received(APP, [(4, 5)], 0.0, 0.104)  # latest_rtt = 0.1
    # §6.1.1: kPacketThreshold 3: 4 >= pn + 3 for pn 0, 1.
    assert pns(out.acked) == [4]
    assert pns(out.lost) == [0, 1]
    assert all(p.frames == [("tag", APP, p.packet_number)] for p in out.lost)
    # §6.1.2: 2 and 3 wait for 9/8 * max(srtt, latest) after they were sent.
    loss_delay = K_TIME_THRESHOLD * 0.1
    assert rec.get_loss_detection_timer() == pytest.approx(0.002 + loss_delay)
    assert rec.on_loss_detection_timeout(0.002 + loss_delay - 0.0005) is None
    action = rec.on_loss_detection_timeout(0.002 + loss_delay)
    assert isinstance(action, PacketsLost) and action.space == APP
    assert pns(action.lost) == [2]
    assert rec.get_loss_detection_timer() == pytest.approx(0.003 + loss_delay)
    action = rec.on_loss_detection_timeout(0.003 + loss_delay)
    assert pns(action.lost) == [3]
    assert rec.bytes_in_flight == 0
    assert rec.get_loss_detection_timer() is None


def test_time_threshold_declares_old_packets_lost_at_once():
    rec = confirmed_server()
    send(rec, APP, 0, 0.0)
    send(rec, APP, 1, 0.5)
    out = rec.on_ack_received(APP, [(1, 2)], 0.0, 0.6)
    # Only one packet below the largest, but sent 0.6 s ago > 9/8 * 0.1.
    assert pns(out.lost) == [0]


def test_time_threshold_has_granularity_floor():
    rtt = RttEstimator()
    rtt.update(0.0001, 0.0, 1.0, handshake_confirmed=True, max_ack_delay=0.0)
    assert rtt.loss_delay() == K_GRANULARITY


def test_loss_before_rtt_sample_uses_initial_rtt():
    rec = LossRecovery(is_client=False)
    send(rec, INITIAL, 0, 0.0)
    send(rec, INITIAL, 1, 0.01, ack_eliciting=False)
    # Only the ACK-only packet is acknowledged: no RTT sample (§5.1).
    out = rec.on_ack_received(INITIAL, [(1, 2)], 0.0, 0.05)
    assert not out.rtt_sampled and out.lost == [] and not rec.rtt.has_sample
    # §6.1.2 with smoothed_rtt = kInitialRtt: 9/8 * 333 ms after 0 was sent.
    assert rec.get_loss_detection_timer() == pytest.approx(K_TIME_THRESHOLD * K_INITIAL_RTT)


def test_loss_is_signalled_to_the_controller_once_per_round():
    rec = confirmed_server()
    for pn in range(10):
        send(rec, APP, pn, 0.0)
    cwnd = rec.congestion_window
    rec.on_ack_received(APP, [(4, 5)], 0.0, 0.1)  # loses 0, 1
    assert rec.congestion_window == cwnd // 2
    rec.on_ack_received(APP, [(4, 6), (8, 9)], 0.0, 0.11)  # loses 2, 3, ... same period
    assert rec.congestion_window == cwnd // 2
    assert rec.cc.in_recovery


# -- PTO (§6.2) ---------------------------------------------------------------


def test_pto_timer_value_and_backoff_for_handshake_space():
    rec = LossRecovery(is_client=False)
    send(rec, HANDSHAKE, 0, 0.0)
    rec.on_ack_received(HANDSHAKE, [(0, 1)], 0.0, 0.1)  # srtt 0.1, rttvar 0.05
    send(rec, HANDSHAKE, 1, 1.0)
    pto = 0.1 + 4 * 0.05  # no max_ack_delay outside Application data
    assert rec.get_loss_detection_timer() == pytest.approx(1.0 + pto)
    assert rec.on_loss_detection_timeout(1.0 + pto - 0.01) is None
    action = rec.on_loss_detection_timeout(1.0 + pto)
    assert action == ProbeNeeded(HANDSHAKE, PTO_PROBE_PACKETS, False)
    assert rec.pto_count == 1
    # §6.2.1: a PTO doesn't declare anything lost.
    assert pns(rec.sent_packets(HANDSHAKE)) == [1]
    assert rec.get_loss_detection_timer() == pytest.approx(1.0 + 2 * pto)
    rec.on_loss_detection_timeout(1.0 + 2 * pto)
    assert rec.get_loss_detection_timer() == pytest.approx(1.0 + 4 * pto)
    # A probe sent restarts the timer from its send time.
    send(rec, HANDSHAKE, 2, 2.0)
    assert rec.get_loss_detection_timer() == pytest.approx(2.0 + 4 * pto)
    # An ACK resets the backoff.
    rec.on_ack_received(HANDSHAKE, [(2, 3)], 0.0, 2.1)
    assert rec.pto_count == 0


def test_pto_of_application_data_includes_max_ack_delay_with_backoff():
    rec = confirmed_server(max_ack_delay=0.02)
    send(rec, APP, 0, 0.0)
    rec.on_ack_received(APP, [(0, 1)], 0.0, 0.1)
    send(rec, APP, 1, 1.0)
    base = 0.1 + 4 * 0.05
    assert rec.get_loss_detection_timer() == pytest.approx(1.0 + base + 0.02)
    rec.on_loss_detection_timeout(1.0 + base + 0.02)
    assert rec.get_loss_detection_timer() == pytest.approx(1.0 + 2 * (base + 0.02))
    assert rec.probe_timeout() == pytest.approx(base + 0.02)
    assert rec.probe_timeout(include_max_ack_delay=False) == pytest.approx(base)


def test_pto_uses_granularity_when_rttvar_is_tiny():
    rec = confirmed_server(max_ack_delay=0.0)
    send(rec, APP, 0, 0.0)
    rec.on_ack_received(APP, [(0, 1)], 0.0, 0.0001)
    for pn in range(1, 40):  # identical samples shrink rttvar geometrically
        send(rec, APP, pn, float(pn))
        rec.on_ack_received(APP, [(pn, pn + 1)], 0.0, pn + 0.0001)
    send(rec, APP, 40, 50.0)
    assert rec.rtt.rttvar * 4 < K_GRANULARITY
    assert rec.get_loss_detection_timer() == pytest.approx(50.0 + rec.rtt.smoothed_rtt + K_GRANULARITY)


def test_no_application_pto_before_handshake_confirmed():
    rec = LossRecovery(is_client=False)
    send(rec, APP, 0, 0.0)
    assert rec.get_loss_detection_timer() is None
    send(rec, HANDSHAKE, 0, 0.5)
    assert rec.get_loss_detection_timer() == pytest.approx(0.5 + 0.999)
    action = rec.on_loss_detection_timeout(0.5 + 0.999)
    assert action.space == HANDSHAKE
    rec.discard_space(HANDSHAKE, now=2.0)
    assert rec.get_loss_detection_timer() is None
    rec.on_handshake_confirmed(0.0)
    assert rec.get_loss_detection_timer() == pytest.approx(0.0 + 0.999 + 0.025)


def test_earliest_space_wins():
    rec = LossRecovery(is_client=False)
    send(rec, INITIAL, 0, 0.2)
    send(rec, HANDSHAKE, 0, 0.1)
    assert rec.get_loss_detection_timer() == pytest.approx(0.1 + 0.999)
    assert rec.on_loss_detection_timeout(1.2).space == HANDSHAKE


def test_client_anti_deadlock_pto():
    rec = LossRecovery(is_client=True)
    assert rec.get_loss_detection_timer() is None  # nothing sent yet
    send(rec, INITIAL, 0, 0.0)
    rec.on_ack_received(INITIAL, [(0, 1)], 0.0, 0.1)
    # Nothing in flight, but the server may be stuck at its amplification
    # limit: §6.2.2.1 keeps a timer, counted from the ACK.
    assert rec.get_loss_detection_timer() == pytest.approx(0.1 + 0.1 + 4 * 0.05)
    action = rec.on_loss_detection_timeout(0.4)
    assert action == ProbeNeeded(INITIAL, 1, anti_deadlock=True)
    assert rec.get_loss_detection_timer() == pytest.approx(0.4 + 2 * 0.3)
    rec.has_handshake_keys = True
    action = rec.on_loss_detection_timeout(1.0)
    assert action == ProbeNeeded(HANDSHAKE, 1, anti_deadlock=True)
    # A Handshake ACK proves the address was validated: no more timer.
    send(rec, HANDSHAKE, 0, 1.1)
    rec.on_ack_received(HANDSHAKE, [(0, 1)], 0.0, 1.2)
    assert rec.peer_completed_address_validation
    assert rec.get_loss_detection_timer() is None


def test_client_keeps_backoff_on_initial_ack_before_validation():
    rec = LossRecovery(is_client=True)
    send(rec, INITIAL, 0, 0.0)
    rec.on_loss_detection_timeout(1.0)
    send(rec, INITIAL, 1, 1.0)
    rec.on_ack_received(INITIAL, [(1, 2)], 0.0, 1.1)
    assert rec.pto_count == 1  # §A.7: the client is unsure of validation
    server = LossRecovery(is_client=False)
    send(server, INITIAL, 0, 0.0)
    server.on_loss_detection_timeout(1.0)
    send(server, INITIAL, 1, 1.0)
    server.on_ack_received(INITIAL, [(1, 2)], 0.0, 1.1)
    assert server.pto_count == 0


def test_zero_rtt_in_flight_does_not_hide_anti_deadlock():
    rec = LossRecovery(is_client=True)
    send(rec, INITIAL, 0, 0.0)
    send(rec, APP, 0, 0.0)  # 0-RTT
    rec.on_ack_received(INITIAL, [(0, 1)], 0.0, 0.1)
    action = rec.on_loss_detection_timeout(10.0)
    assert action == ProbeNeeded(INITIAL, 1, anti_deadlock=True)


def test_amplification_blocked_server_arms_no_pto_but_keeps_loss_timer():
    rec = LossRecovery(is_client=False)
    send(rec, INITIAL, 0, 0.0)
    assert rec.get_loss_detection_timer(amplification_blocked=True) is None
    assert rec.on_loss_detection_timeout(5.0, amplification_blocked=True) is None
    # Once unblocked, the (long expired) PTO is due at once.
    assert rec.get_loss_detection_timer() == pytest.approx(0.999)
    assert isinstance(rec.on_loss_detection_timeout(5.0), ProbeNeeded)
    send(rec, INITIAL, 1, 5.0)
    send(rec, INITIAL, 2, 5.001)
    out = rec.on_ack_received(INITIAL, [(2, 3)], 0.0, 5.1)
    assert pns(out.lost) == [0]  # 1 is still within the time threshold
    timer = rec.get_loss_detection_timer(amplification_blocked=True)
    assert timer == pytest.approx(5.0 + K_TIME_THRESHOLD * 0.099)


def test_ack_only_packets_ask_for_a_ping_eventually():
    rec = confirmed_server()
    for pn in range(ACK_ONLY_ELICIT_THRESHOLD):
        assert not rec.needs_ack_eliciting(APP)
        send(rec, APP, pn, 0.0, ack_eliciting=False)
    assert rec.needs_ack_eliciting(APP)
    assert rec.bytes_in_flight == 0 and rec.get_loss_detection_timer() is None
    ping = send(rec, APP, 100, 0.1)
    assert not rec.needs_ack_eliciting(APP)
    out = rec.on_ack_received(APP, [(100, 101)], 0.0, 0.2)
    assert out.acked == [ping] and len(out.lost) == ACK_ONLY_ELICIT_THRESHOLD
    assert rec.ack_only_outstanding(APP) == 0 and rec.bytes_in_flight == 0


# -- discarding a space (§6.4) -----------------------------------------------


def test_discard_space_removes_bytes_in_flight_and_timers():
    rec = LossRecovery(is_client=True)
    send(rec, INITIAL, 0, 0.0, size=1200)
    send(rec, INITIAL, 1, 0.0, size=300, ack_eliciting=False, in_flight=False)
    send(rec, HANDSHAKE, 0, 0.1, size=500)
    rec.on_loss_detection_timeout(1.0)
    assert rec.bytes_in_flight == 1700 and rec.pto_count == 1
    dropped = rec.discard_space(INITIAL, now=1.0)
    assert pns(dropped) == [0, 1]
    assert rec.bytes_in_flight == 500
    assert rec.pto_count == 0
    assert rec.congestion_window == 12000  # no congestion signal
    assert rec.get_loss_detection_timer() == pytest.approx(0.1 + 0.999)
    assert rec.on_ack_received(INITIAL, [(0, 2)], 0.0, 1.1) == AckOutcome([], [])
    with pytest.raises(UsageError):
        send(rec, INITIAL, 2, 1.2)


# -- persistent congestion (§7.6) ----------------------------------------------


def _pc_setup(cc="reno"):
    rec = confirmed_server(congestion_control=cc)
    send(rec, APP, 0, 0.0)
    rec.on_ack_received(APP, [(0, 1)], 0.0, 0.1)  # first sample at 0.1
    for pn, t in zip(range(1, 5), (0.2, 0.6, 1.0, 1.4)):
        send(rec, APP, pn, t)
    send(rec, APP, 5, 1.5)
    return rec


@pytest.mark.parametrize("cc", ["reno", "cubic"])
def test_persistent_congestion_collapses_the_window(cc):
    rec = _pc_setup(cc)
    out = rec.on_ack_received(APP, [(5, 6)], 0.0, 1.6)
    assert pns(out.lost) == [1, 2, 3, 4]
    # duration = (0.1 + 4 * 0.0375 + 0.025) * 3 = 0.825 < 1.4 - 0.2
    assert rec.persistent_congestion_duration() == pytest.approx(0.825)
    assert out.persistent_congestion
    # The window collapsed to 2 datagrams (§7.6.2); then, as §A.7 orders it,
    # the ACK's own packet (sent after the loss) grew it in slow start.
    assert rec.congestion_window == 2 * MDS + MDS
    assert not rec.cc.in_recovery


def test_persistent_congestion_needs_no_ack_in_between():
    rec = _pc_setup()
    out = rec.on_ack_received(APP, [(3, 4), (5, 6)], 0.0, 1.6)
    assert pns(out.lost) == [1, 2, 4]
    assert not out.persistent_congestion
    assert rec.congestion_window > 2 * MDS


def test_persistent_congestion_needs_span_longer_than_duration():
    rec = confirmed_server()
    send(rec, APP, 0, 0.0)
    rec.on_ack_received(APP, [(0, 1)], 0.0, 0.1)
    for pn in range(1, 5):
        send(rec, APP, pn, 0.2 + pn * 0.1)
    send(rec, APP, 5, 1.0)
    out = rec.on_ack_received(APP, [(5, 6)], 0.0, 1.1)
    assert pns(out.lost) == [1, 2, 3, 4] and not out.persistent_congestion


def test_no_persistent_congestion_before_first_rtt_sample():
    rec = confirmed_server()
    for pn in range(5):
        send(rec, APP, pn, pn * 1.0)
    send(rec, APP, 5, 10.0)
    out = rec.on_ack_received(APP, [(5, 6)], 0.0, 10.1)
    assert pns(out.lost) == [0, 1, 2, 3, 4]
    assert not out.persistent_congestion  # all sent before the first sample


# -- ECN (RFC 9000 §13.4.2, RFC 9002 §7.1) -------------------------------------


def test_ecn_ce_increase_is_a_congestion_event():
    rec = confirmed_server()
    for pn in range(4):
        send(rec, APP, pn, 0.0, ecn=True)
    cwnd = rec.congestion_window
    out = rec.on_ack_received(APP, [(0, 2)], 0.0, 0.1, ecn_counts=(2, 0, 0))
    assert not out.ecn_congestion and rec.congestion_window >= cwnd
    out = rec.on_ack_received(APP, [(0, 4)], 0.0, 0.2, ecn_counts=(3, 0, 1))
    assert out.ecn_congestion and not rec.ecn_failed
    assert rec.cc.in_recovery and rec.cc.congestion_events == 1


def test_ecn_validation_failures():
    rec = confirmed_server()
    for pn in range(3):
        send(rec, APP, pn, 0.0, ecn=True)
    rec.on_ack_received(APP, [(0, 1)], 0.0, 0.1, ecn_counts=(1, 0, 0))
    rec.on_ack_received(APP, [(0, 2)], 0.0, 0.1, ecn_counts=(0, 0, 0))  # decreased
    assert rec.ecn_failed
    bleached = confirmed_server()
    send(bleached, APP, 0, 0.0, ecn=True)
    bleached.on_ack_received(APP, [(0, 1)], 0.0, 0.1)  # ECT packet acked without counts
    assert bleached.ecn_failed


# -- property: the books stay balanced ----------------------------------------

# One step: a kind (weighted by repetition) and every argument any kind
# needs.  Ack ranges are (distance below the space's next packet number,
# length), so most of them hit packets actually outstanding.
KINDS = ["send"] * 8 + ["ack"] * 4 + ["time"] * 2 + ["timer", "discard", "confirm"]
step = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(list(PacketNumberSpace)),
    st.integers(20, 1500),
    st.booleans(),
    st.integers(0, 2),
    st.lists(st.tuples(st.integers(1, 12), st.integers(1, 6)), min_size=1, max_size=4),
    st.floats(0.0001, 1.0),
)
ops = st.lists(step, min_size=10, max_size=80)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, cc=st.sampled_from(["reno", "cubic"]), is_client=st.booleans())
def test_random_acks_losses_and_timeouts_keep_books(ops, cc, is_client):
    rec = LossRecovery(is_client=is_client, congestion_control=cc)
    now = 0.0
    next_pn = {s: 0 for s in PacketNumberSpace}
    outstanding: dict[int, SentPacket] = {}  # id -> record
    seen: set[int] = set()
    everything: list[SentPacket] = []  # keeps every record alive, so ids stay unique

    def settle(records):
        for p in records:
            assert id(p) not in seen, "a record came back twice"
            seen.add(id(p))
            outstanding.pop(id(p))

    for kind, space, size, eliciting, skip, spans, amount in ops:
        if kind == "send":
            if rec.is_discarded(space):
                continue
            next_pn[space] += skip  # skipped packet numbers are allowed
            p = send(rec, space, next_pn[space], now, size=size, ack_eliciting=eliciting)
            next_pn[space] += 1
            outstanding[id(p)] = p
            everything.append(p)
        elif kind == "ack":
            top = next_pn[space]
            ranges = [(top - back, min(top - back + n, top)) for back, n in spans if back <= top]
            out = rec.on_ack_received(space, ranges, amount / 10, now)
            settle(out.acked)
            settle(out.lost)
            assert all(any(s <= p.packet_number < e for s, e in ranges) for p in out.acked)
        elif kind == "time":
            now += amount
        elif kind == "timer":
            timer = rec.get_loss_detection_timer()
            if timer is not None:
                now = max(now, timer)
                action = rec.on_loss_detection_timeout(now)
                assert action is not None
                if isinstance(action, PacketsLost):
                    settle(action.lost)
                else:
                    assert action.count in (1, 2)
        elif kind == "discard":
            if space != APP:
                settle(rec.discard_space(space, now))
        elif kind == "confirm":
            rec.on_handshake_confirmed(0.0)

        in_flight = sum(p.size for p in outstanding.values() if p.in_flight)
        assert rec.bytes_in_flight == in_flight >= 0
        tracked = [p for s in PacketNumberSpace for p in rec.sent_packets(s)]
        assert {id(p) for p in tracked} == set(outstanding)
        for s in PacketNumberSpace:
            eliciting = sum(1 for p in rec.sent_packets(s) if p.ack_eliciting and p.in_flight)
            assert rec.ack_eliciting_in_flight(s) == eliciting
        assert rec.congestion_window >= 2 * MDS
        timer = rec.get_loss_detection_timer()
        assert timer is None or math.isfinite(timer)


# -- a transfer over a lossy simulated link -----------------------------------


@pytest.mark.parametrize("cc", ["reno", "cubic"])
def test_lossy_transfer_completes(cc):
    """Sender (LossRecovery) and receiver (AckTracker) over a link with 25 ms
    each way and 5% loss both ways, on a simulated clock: every chunk
    arrives, and the books end balanced."""
    import heapq
    import random

    from pyquic.ack import AckTracker

    rng = random.Random(7)
    chunks = 600
    one_way, loss = 0.025, 0.05
    rec = confirmed_server(congestion_control=cc)
    tracker = AckTracker()
    events: list = []  # (time, seq, kind, payload)
    seq = 0
    now = 0.0
    pn = 0
    pending = list(range(chunks))  # chunks to (re)send, lowest first
    delivered: set[int] = set()

    def transmit(kind, payload):
        nonlocal seq
        seq += 1
        if rng.random() >= loss:
            heapq.heappush(events, (now + one_way, seq, kind, payload))

    def send_chunk(chunk):
        nonlocal pn
        send(rec, APP, pn, now)
        rec.sent_packets(APP)[-1].frames[:] = [chunk]
        transmit("data", (pn, chunk))
        pn += 1

    def pump():
        while pending and rec.can_send(MDS):
            chunk = pending.pop(0)
            if chunk not in delivered:
                send_chunk(chunk)

    def requeue(records):
        for p in records:
            pending.extend(c for c in p.frames if c not in delivered and c not in pending)
        pending.sort()

    pump()
    for _ in range(100_000):
        if len(delivered) == chunks:
            break
        assert now < 60.0, "transfer stalled"
        candidates = [t for t in (rec.get_loss_detection_timer(), tracker.get_ack_timer()) if t is not None]
        if events:
            candidates.append(events[0][0])
        now = max(now, min(candidates))
        while events and events[0][0] <= now:
            _, _, kind, payload = heapq.heappop(events)
            if kind == "data":
                packet_number, chunk = payload
                if tracker.on_packet_received(packet_number, ack_eliciting=True, now=now):
                    delivered.add(chunk)
            else:
                ranges, delay = payload
                out = rec.on_ack_received(APP, ranges, delay, now)
                requeue(out.lost)
        if tracker.ack_due(now):
            frame = tracker.build_ack(now)
            tracker.on_ack_sent()
            transmit("ack", (frame.ranges, frame.ack_delay))
        action = rec.on_loss_detection_timeout(now)
        if isinstance(action, PacketsLost):
            requeue(action.lost)
        elif isinstance(action, ProbeNeeded):
            # §6.2.4: new data if any, else the oldest outstanding again.
            for _ in range(action.count):
                outstanding = [c for p in rec.sent_packets(APP) for c in p.frames if c not in delivered]
                probe = pending.pop(0) if pending else (outstanding[0] if outstanding else 0)
                send_chunk(probe)
        pump()
    else:
        pytest.fail(f"no progress at {now}: {len(delivered)} delivered, timer {rec.get_loss_detection_timer()}")

    assert rec.rtt.smoothed_rtt == pytest.approx(0.05, abs=0.03)
    assert rec.congestion_window >= 2 * MDS
    assert rec.bytes_in_flight == sum(p.size for p in rec.sent_packets(APP) if p.in_flight)
