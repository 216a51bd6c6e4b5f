# pyquic.ack (RFC 9000 §13.2): when an ACK is due, what it carries, the
# ACK Delay field, duplicates, the range cap, ECN counts, and forgetting
# what an acknowledged ACK covered; plus a model-based property test.
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyquic.ack import (
    ECN_CE,
    ECN_ECT0,
    ECN_ECT1,
    MAX_TRACKED_RANGES,
    AckTracker,
    PacketNumberRanges,
)
from pyquic.errors import UsageError


def app(**kw):
    return AckTracker(immediate=False, **kw)


def test_initial_and_handshake_ack_immediately():
    ack = AckTracker(immediate=True)
    ack.on_packet_received(0, ack_eliciting=True, now=1.0)
    assert ack.get_ack_timer() == 1.0 and ack.ack_due(1.0)


def test_application_waits_max_ack_delay_or_two_packets():
    ack = app()
    assert ack.get_ack_timer() is None
    ack.on_packet_received(0, ack_eliciting=True, now=1.0)
    assert ack.get_ack_timer() == pytest.approx(1.025)
    assert not ack.ack_due(1.02) and ack.ack_due(1.025)
    # §13.2.2: the second ack-eliciting packet makes it due at once.
    ack.on_packet_received(1, ack_eliciting=True, now=1.01)
    assert ack.get_ack_timer() == 1.01
    frame = ack.build_ack(1.01)
    assert frame.ranges == ((0, 2),)
    ack.on_ack_sent()
    assert ack.get_ack_timer() is None and not ack.ack_pending
    ack.on_packet_received(2, ack_eliciting=True, now=2.0)
    assert ack.get_ack_timer() == pytest.approx(2.025)  # the count restarted


def test_custom_max_ack_delay_and_threshold():
    ack = app(max_ack_delay=0.1, ack_eliciting_threshold=3)
    for pn in range(2):
        ack.on_packet_received(pn, ack_eliciting=True, now=0.0)
    assert ack.get_ack_timer() == pytest.approx(0.1)
    ack.on_packet_received(2, ack_eliciting=True, now=0.05)
    assert ack.get_ack_timer() == 0.05


def test_non_ack_eliciting_packets_never_arm_the_timer():
    ack = app()
    for pn in range(5):
        assert ack.on_packet_received(pn, ack_eliciting=False, now=0.0)
    assert ack.get_ack_timer() is None
    assert ack.ack_pending  # piggybacked on the next packet if there is one
    ack.on_packet_received(5, ack_eliciting=True, now=0.1)
    assert ack.build_ack(0.1).ranges == ((0, 6),)


def test_reordering_and_gaps_ack_immediately():
    ack = app()
    ack.on_packet_received(0, ack_eliciting=True, now=0.0)
    ack.on_ack_sent()
    # A gap: 1 and 2 missing below 3.
    ack.on_packet_received(3, ack_eliciting=True, now=0.1)
    assert ack.get_ack_timer() == 0.1
    ack.on_ack_sent()
    # Below the largest ack-eliciting packet: out of order.
    ack.on_packet_received(1, ack_eliciting=True, now=0.2)
    assert ack.get_ack_timer() == 0.2
    ack.on_ack_sent()
    # In order again: back to delaying.
    ack.on_packet_received(4, ack_eliciting=True, now=0.3)
    assert ack.get_ack_timer() == pytest.approx(0.325)
    ack.on_ack_sent()
    # Missing non-ack-eliciting packets filled the gap: no gap.
    ack.on_packet_received(5, ack_eliciting=False, now=0.4)
    ack.on_packet_received(6, ack_eliciting=True, now=0.4)
    assert ack.get_ack_timer() == pytest.approx(0.425)


def test_ecn_counts_and_ce_acks_immediately():
    ack = app()
    ack.on_packet_received(0, ack_eliciting=True, now=0.0, ecn=ECN_ECT0)
    ack.on_packet_received(1, ack_eliciting=False, now=0.0, ecn=ECN_ECT1)
    assert ack.get_ack_timer() == pytest.approx(0.025)
    ack.on_packet_received(2, ack_eliciting=True, now=0.01, ecn=ECN_CE)
    assert ack.get_ack_timer() == 0.01
    assert ack.on_packet_received(2, ack_eliciting=True, now=0.01, ecn=ECN_CE) is False
    assert ack.build_ack(0.01).ecn_counts == (1, 1, 1)  # duplicates don't count
    assert app().build_ack(0.0) is None
    plain = app()
    plain.on_packet_received(0, ack_eliciting=True, now=0.0)
    assert plain.build_ack(0.0).ecn_counts is None


def test_duplicates():
    ack = app()
    assert ack.on_packet_received(7, ack_eliciting=True, now=0.0)
    assert ack.is_duplicate(7) and not ack.is_duplicate(6)
    assert ack.on_packet_received(7, ack_eliciting=True, now=0.0) is False
    assert ack.duplicates == 1


def test_ack_delay_field():
    ack = app(ack_delay_exponent=3)
    ack.on_packet_received(0, ack_eliciting=True, now=1.0)
    frame = ack.build_ack(1.010)
    assert frame.ack_delay == pytest.approx(0.010)
    # 10000 microseconds / 2^3 (§19.3)
    assert frame.ack_delay_encoded == 1250
    assert app(ack_delay_exponent=0).build_ack(0.0) is None
    exact = app(ack_delay_exponent=0)
    exact.on_packet_received(0, ack_eliciting=True, now=0.5)
    assert exact.build_ack(0.75).ack_delay_encoded == 250_000
    # The delay runs from the largest packet's arrival.
    ack.on_packet_received(5, ack_eliciting=True, now=2.0)
    ack.on_packet_received(3, ack_eliciting=True, now=3.0)
    assert ack.build_ack(3.5).ack_delay == pytest.approx(1.5)


def test_ranges_largest_first_and_bounded():
    ack = app()
    for pn in (0, 1, 2, 5, 6, 9, 12, 13):
        ack.on_packet_received(pn, ack_eliciting=True, now=0.0)
    frame = ack.build_ack(0.0)
    assert frame.ranges == ((12, 14), (9, 10), (5, 7), (0, 3))
    assert frame.largest_acknowledged == 13
    assert ack.build_ack(0.0, max_ranges=2).ranges == ((12, 14), (9, 10))


def test_range_cap_drops_the_oldest_and_raises_the_duplicate_floor():
    ack = app(max_ranges=4)
    for pn in (0, 2, 4, 6):
        ack.on_packet_received(pn, ack_eliciting=False, now=0.0)
    ack.on_packet_received(8, ack_eliciting=False, now=0.0)
    assert ack.ranges_to_ack() == [(8, 9), (6, 7), (4, 5), (2, 3)]
    assert ack.duplicate_floor == 1
    assert ack.is_duplicate(0) and not ack.is_duplicate(1)
    # 1 arrives late: a new lowest range, dropped at once by the cap; it is
    # accepted once, then counts as a duplicate.
    assert ack.on_packet_received(1, ack_eliciting=False, now=0.0)
    assert ack.is_duplicate(1)
    assert len(ack.ranges_to_ack()) == 4
    assert MAX_TRACKED_RANGES == 64 and AckTracker().max_ranges == 64


def test_ack_of_ack_forgets_covered_ranges():
    ack = app()
    for pn in (0, 1, 3, 4, 7):
        ack.on_packet_received(pn, ack_eliciting=True, now=0.0)
    frame = ack.build_ack(0.0)
    ack.on_ack_sent()
    ack.on_packet_received(8, ack_eliciting=True, now=0.1)
    ack.on_packet_received(10, ack_eliciting=True, now=0.1)
    # §13.2.4: the packet carrying `frame` was acknowledged.
    ack.on_ack_of_ack(frame.largest_acknowledged)
    assert ack.build_ack(0.1).ranges == ((10, 11), (8, 9))
    # Duplicate detection is not affected by forgetting.
    assert ack.is_duplicate(3)
    # A late packet below what was forgotten is still acknowledged.
    ack.on_packet_received(5, ack_eliciting=True, now=0.2)
    assert ack.build_ack(0.2).ranges == ((10, 11), (8, 9), (5, 6))
    ack.on_ack_of_ack(10)
    assert ack.build_ack(0.3) is None


def test_packet_number_ranges_merge():
    r = PacketNumberRanges(cap=10)
    for pn in (5, 3, 4, 9, 7, 8, 6):
        assert r.add(pn) == (True, None)
    assert list(r) == [(3, 10)]
    assert r.add(6) == (False, None)
    r.remove_below(5)
    assert list(r) == [(5, 10)] and r.largest == 9
    with pytest.raises(UsageError):
        PacketNumberRanges(cap=0)


@settings(max_examples=200, deadline=None)
@given(
    pns=st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=120),
    cap=st.integers(1, 8),
    ack_of_ack=st.lists(st.integers(0, 300), max_size=3),
)
def test_model(pns, cap, ack_of_ack):
    ack = app(max_ranges=cap)
    received: set[int] = set()
    now = 0.0
    for i, (pn, eliciting) in enumerate(pns):
        now += 0.001
        was_dup = ack.is_duplicate(pn)
        # Never a false "new" for a packet already processed.
        if pn in received:
            assert was_dup
        accepted = ack.on_packet_received(pn, ack_eliciting=eliciting, now=now)
        assert accepted == (not was_dup)
        if accepted:
            received.add(pn)
        if i in ack_of_ack:
            frame = ack.build_ack(now)
            if frame is not None:
                ack.on_ack_sent()
                ack.on_ack_of_ack(frame.largest_acknowledged)
        timer = ack.get_ack_timer()
        assert timer is None or timer <= now + ack.max_ack_delay
        ranges = ack.ranges_to_ack()
        assert len(ranges) <= cap
        # Largest first, disjoint, not adjacent, and only received packets.
        for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
            assert s1 > e2
        for s, e in ranges:
            assert s < e and all(p in received for p in range(s, e))
        frame = ack.build_ack(now, max_ranges=2)
        if frame is not None:
            assert frame.ranges == tuple(ranges[:2]) and frame.ack_delay >= 0
