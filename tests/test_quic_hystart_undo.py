# Smarter recovery: HyStart++ (RFC 9406) ends slow start on a rising RTT,
# before any loss; a reduction whose "lost" packets all arrive after all is
# undone (RFC 9438 §4.9); persistent congestion as RFC 9002 §7.6.3's example
# has it; and on a simulated 20 ms path with 2 % loss and reordering, late
# packets undo the reductions they caused (bench/bench_recovery.py measures
# what that is worth against CUBIC without them).
from __future__ import annotations

import pytest

from pyquic.congestion.cubic import CubicController
from pyquic.congestion.hystart import CSS_ROUNDS, HyStart
from pyquic.recovery import LossRecovery
from tests.test_quic_recovery import APP, MDS, pns, send


def rounds(hystart: HyStart, rtts: list[float], start: float = 0.0, per_round: int = 8) -> float:
    """Feed one round per RTT: `per_round` acks, each with its sample."""
    now = start
    for rtt in rtts:
        now += rtt
        for i in range(per_round):  # packets sent a round trip ago, acknowledged now
            hystart.on_acked(now - rtt + 0.001 * i, now + 0.001 * i)
            hystart.on_rtt_sample(rtt)
    return now


def test_a_steady_rtt_keeps_slow_start():
    hystart = HyStart()
    rounds(hystart, [0.050] * 20)
    assert not hystart.in_css and not hystart.done and hystart.increase(MDS) == MDS


def test_a_rising_rtt_turns_slow_start_conservative_then_ends_it():
    hystart = HyStart()
    # 50 ms, then 57 ms: above 50 + max(4, 50/8 = 6.25) ms.
    rounds(hystart, [0.050] * 3 + [0.057])
    assert hystart.in_css and hystart.css_entries == 1
    assert hystart.increase(MDS) == MDS // 4  # a quarter as fast
    rounds(hystart, [0.057] * CSS_ROUNDS, start=10.0)
    assert hystart.done


def test_an_rtt_that_comes_back_down_resumes_slow_start():
    hystart = HyStart()
    rounds(hystart, [0.050] * 3 + [0.057, 0.050])
    assert not hystart.in_css and not hystart.done and hystart.css_entries == 1


def test_too_few_samples_decide_nothing():
    hystart = HyStart()
    rounds(hystart, [0.050] * 3 + [0.090], per_round=7)  # N_RTT_SAMPLE is 8
    assert not hystart.in_css


def test_cubic_leaves_slow_start_without_a_loss():
    cc = CubicController(max_datagram_size=MDS)
    rec = LossRecovery(is_client=False, congestion_control=cc)
    rec.on_handshake_confirmed(0.0)
    pn, now, rtt = 0, 0.0, 0.050
    while cc.in_slow_start and pn < 20_000:
        window = cc.congestion_window // MDS
        first = pn
        for _ in range(window):
            send(rec, APP, pn, now)
            pn += 1
        rtt += 0.010  # a queue builds: each round's RTT is 10 ms longer (the threshold here is 6.25 ms)
        for acked in range(first, pn, 2):  # an ACK every two packets, each an RTT sample
            rec.on_ack_received(APP, [(acked, min(acked + 2, pn))], 0.0, now + rtt + 0.0001 * (acked - first))
        now += rtt + 0.0001 * (pn - first)
    assert not cc.in_slow_start and cc.congestion_events == 0
    assert cc.ssthresh <= cc.congestion_window < cc.ssthresh + 2 * MDS  # (the rest of that ACK: congestion avoidance)
    assert cc.hystart.css_entries >= 1


# -- undoing a spurious reduction -------------------------------------------------------------------


def reordered(undo: bool = True) -> tuple[LossRecovery, float, float]:
    rec = LossRecovery(is_client=False, congestion_control="cubic", undo_spurious=undo)
    rec.on_handshake_confirmed(0.0)
    for pn in range(40):
        send(rec, APP, pn, 0.01 * pn)
    rec.on_ack_received(APP, [(0, 20)], 0.0, 0.5)
    before = rec.cc.congestion_window
    out = rec.on_ack_received(APP, [(24, 40)], 0.0, 0.6)  # 20..23 look lost (packet threshold)
    assert pns(out.lost) == [20, 21, 22, 23]
    return rec, before, rec.cc.congestion_window


def test_a_reduction_is_undone_when_every_lost_packet_arrives_after_all():
    rec, before, reduced = reordered()
    assert reduced < before and rec.cc.congestion_events == 1
    rec.on_ack_received(APP, [(20, 24)], 0.0, 0.61)  # they were only late
    assert rec.spurious_losses == 4 and rec.cc.undone_events == 1
    assert rec.cc.congestion_window >= before and not rec.cc.in_recovery


def test_no_undo_while_one_of_them_is_still_missing_or_when_turned_off():
    rec, before, reduced = reordered()
    rec.on_ack_received(APP, [(20, 23)], 0.0, 0.61)
    assert rec.cc.undone_events == 0 and rec.cc.congestion_window <= reduced + 2 * MDS
    off, _, reduced = reordered(undo=False)
    off.on_ack_received(APP, [(20, 24)], 0.0, 0.61)
    assert off.cc.undone_events == 0 and off.cc.congestion_window <= reduced + 4 * MDS


# -- persistent congestion: RFC 9002 §7.6.3's example ----------------------------------------------


def test_persistent_congestion_as_in_the_rfc_example():
    # smoothed_rtt 1, rttvar 0, max_ack_delay 0: the duration is 3 s (and 3 ms).
    rec = LossRecovery(is_client=False, max_ack_delay=0.0)
    rec.on_handshake_confirmed(0.0)
    send(rec, APP, 1, 0.0)
    send(rec, APP, 2, 1.0)
    rec.on_ack_received(APP, [(1, 2)], 0.0, 1.2)  # the first RTT sample
    rec.rtt.smoothed_rtt, rec.rtt.rttvar = 1.0, 0.0
    for pn, t in zip(range(3, 10), (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0)):
        send(rec, APP, pn, t)  # 8 and 9 are the PTO probes
    assert rec.persistent_congestion_duration() == pytest.approx(3.003)  # kGranularity: max(4 * 0, 1 ms)
    out = rec.on_ack_received(APP, [(9, 10)], 0.0, 12.2)
    # 2..8 are declared lost; 3..8 (sent after the first RTT sample, the
    # RFC's own caution) span 6 s > 3 s with none acknowledged in between.
    assert pns(out.lost) == [2, 3, 4, 5, 6, 7, 8]
    assert out.persistent_congestion and rec.cc.congestion_window <= 3 * MDS


# -- on a lossy, reordering 20 ms path ----------------------------------------------------------


def test_on_a_lossy_reordering_path_late_packets_undo_their_reductions():
    # (What that is worth in goodput is bench/bench_recovery.py's to measure.)
    from bench.bench_recovery import lossy_transfer

    _, smart = lossy_transfer(seed=1, smart=True, size=1_000_000)
    _, plain = lossy_transfer(seed=1, smart=False, size=1_000_000)
    assert smart.spurious_losses > 0 and smart.cc.undone_events > 0
    assert plain.cc.undone_events == 0 and plain.cc.hystart.css_entries == 0
