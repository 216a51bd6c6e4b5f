# pyquic/flow_control.py: byte credit in both directions (limits, the timing
# and value of MAX_DATA-style updates, window auto-tuning, *_BLOCKED once per
# limit) and stream credit (STREAM_LIMIT_ERROR, MAX_STREAMS as streams close,
# the 2^60 bound).
import pytest

from pyquic.errors import ErrorCode, TransportError, UsageError
from pyquic.flow_control import (
    MAX_STREAM_COUNT,
    LocalStreamLimit,
    PeerStreamLimit,
    RecvCredit,
    SendCredit,
    check_stream_count,
)


def code_of(info) -> int:
    return info.value.code


# --- receive side -----------------------------------------------------------------------


def test_receiving_beyond_the_limit_is_flow_control_error():
    credit = RecvCredit(window=100)
    assert credit.on_received(60) == 60
    assert credit.on_received(40) == 0  # below the highest: nothing new
    assert credit.on_received(100) == 40
    with pytest.raises(TransportError) as info:
        credit.on_received(101, frame_type=0x08)
    assert code_of(info) == ErrorCode.FLOW_CONTROL_ERROR
    assert info.value.frame_type == 0x08


def test_update_is_due_once_half_the_window_is_consumed():
    credit = RecvCredit(window=100)
    credit.on_received(100)
    credit.on_consumed(49)
    assert not credit.update_due and credit.take_update(now=0.0) is None
    credit.on_consumed(1)
    assert credit.update_due
    assert credit.take_update(now=0.0) == 150  # consumed + window
    assert credit.limit == 150 and not credit.update_due
    assert credit.take_update(now=0.0) is None
    credit.on_received(150)


def test_lost_update_is_resent_only_while_current():
    credit = RecvCredit(window=100)
    credit.on_consumed(60)
    assert credit.take_update(now=0.0) == 160
    credit.on_update_lost(160)
    assert credit.update_due
    assert credit.take_update(now=0.0) == 160
    assert credit.take_update(now=0.0) is None
    credit.on_consumed(60)  # 120 consumed: a newer limit supersedes the lost one
    assert credit.take_update(now=1.0) == 220
    credit.on_update_lost(160)
    assert not credit.update_due


def test_window_grows_when_updates_come_faster_than_two_rtts():
    credit = RecvCredit(window=100, max_window=350)
    credit.on_consumed(50)
    assert credit.take_update(now=0.0, rtt=0.1) == 150  # first update: no history
    credit.on_consumed(50)
    assert credit.take_update(now=0.1, rtt=0.1) == 100 + 200  # 0.1 s < 2 RTT: doubled
    assert credit.window == 200
    credit.on_consumed(100)
    assert credit.take_update(now=0.15, rtt=0.1) == 200 + 350  # capped at max_window
    credit.on_consumed(175)
    assert credit.take_update(now=10.0, rtt=0.1) == 375 + 350  # slow: no growth
    assert credit.window == 350


def test_window_does_not_grow_when_updates_are_slow_or_rtt_unknown():
    credit = RecvCredit(window=100, max_window=1000)
    for i in range(5):
        credit.on_consumed(50)
        assert credit.take_update(now=float(i), rtt=0.1) is not None
    assert credit.window == 100
    credit.on_consumed(50)
    credit.take_update(now=5.01)  # no RTT known
    assert credit.window == 100


def test_window_out_of_range_is_a_usage_error():
    with pytest.raises(UsageError):
        RecvCredit(window=-1)


# --- send side ------------------------------------------------------------------------


def test_send_credit_limits_and_ignores_smaller_maximums():
    credit = SendCredit(limit=100)
    assert credit.available == 100
    credit.consume(70)
    assert credit.available == 30
    assert not credit.on_max(50)  # RFC 9000 §4.1: never decreases
    assert credit.limit == 100
    assert credit.on_max(200) and credit.available == 130
    with pytest.raises(UsageError):
        credit.consume(131)


def test_blocked_is_reported_once_per_limit_value():
    credit = SendCredit(limit=10)
    assert credit.take_blocked() is None  # not blocked yet
    credit.consume(10)
    assert credit.blocked and credit.blocked_due
    assert credit.take_blocked() == 10
    assert credit.take_blocked() is None and not credit.blocked_due
    credit.on_blocked_lost(10)
    assert credit.take_blocked() == 10
    credit.on_max(20)
    credit.on_blocked_lost(10)  # stale: the limit moved on
    assert credit.take_blocked() is None
    credit.consume(10)
    assert credit.take_blocked() == 20


# --- stream counts ------------------------------------------------------------------------


def test_peer_beyond_our_stream_limit_is_stream_limit_error():
    limit = PeerStreamLimit(window=3)
    assert limit.open(0) == 1
    assert limit.open(2) == 2  # implicitly opens index 1
    assert limit.open(1) == 0
    with pytest.raises(TransportError) as info:
        limit.open(3, frame_type=0x08)
    assert code_of(info) == ErrorCode.STREAM_LIMIT_ERROR


def test_max_streams_rises_as_peer_streams_close():
    limit = PeerStreamLimit(window=8)
    for i in range(4):
        limit.open(i)
    assert limit.take_update() is None
    limit.on_closed()
    assert limit.take_update() is None  # a quarter window not yet freed
    limit.on_closed()
    assert limit.take_update() == 10
    assert limit.limit == 10 and limit.take_update() is None
    limit.on_update_lost(10)
    assert limit.update_due and limit.take_update() == 10
    limit.on_update_lost(9)  # not the current value: ignored
    assert not limit.update_due


def test_max_streams_rises_at_once_when_the_peer_used_everything():
    limit = PeerStreamLimit(window=8)
    limit.open(7)
    limit.on_closed()
    assert limit.take_update() == 9
    other = PeerStreamLimit(window=8)
    other.open(0)
    other.on_closed()
    assert other.take_update() is None
    other.on_peer_blocked(8)  # STREAMS_BLOCKED at our limit
    assert other.take_update() == 9


def test_stream_counts_above_2_to_the_60_are_frame_encoding_errors():
    check_stream_count(MAX_STREAM_COUNT, 0x12)
    with pytest.raises(TransportError) as info:
        check_stream_count(MAX_STREAM_COUNT + 1, 0x13)
    assert code_of(info) == ErrorCode.FRAME_ENCODING_ERROR and info.value.frame_type == 0x13
    with pytest.raises(TransportError):
        LocalStreamLimit().on_max_streams(MAX_STREAM_COUNT + 1)
    with pytest.raises(TransportError):
        PeerStreamLimit(4).on_peer_blocked(MAX_STREAM_COUNT + 1)


def test_local_streams_wait_beyond_the_limit_and_report_blocked_once():
    limit = LocalStreamLimit(limit=1)
    assert limit.available == 1
    assert limit.open() == 0
    assert limit.take_blocked() is None  # at the limit, nobody waits
    assert limit.open() == 1
    assert not limit.allows(1)
    assert limit.take_blocked() == 1
    assert limit.take_blocked() is None
    limit.on_blocked_lost(1)
    assert limit.take_blocked() == 1
    assert not limit.on_max_streams(1)
    assert limit.on_max_streams(5)
    assert limit.allows(1) and limit.available == 3 and limit.take_blocked() is None
