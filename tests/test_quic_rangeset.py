# pyquic.rangeset: add / subtract / shift / pop against a plain set of ints
# (hypothesis), merging of touching ranges, the cap dropping the lowest ranges,
# and the descending form ACK frames use.
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyquic.errors import UsageError
from pyquic.frames import Ack, encode_frame, parse_frame
from pyquic.rangeset import MAX_RANGES, RangeSet


def as_set(rs: RangeSet) -> set[int]:
    return {x for start, stop in rs for x in range(start, stop)}


def check_invariants(rs: RangeSet) -> None:
    flat = [x for r in rs for x in r]
    assert all(a < b for a, b in zip(flat, flat[1:])), flat  # sorted, disjoint, not touching


def test_add_merges_touching_and_overlapping():
    rs = RangeSet()
    rs.add(0, 5)
    rs.add(10, 15)
    assert list(rs) == [(0, 5), (10, 15)]
    rs.add(5, 10)
    assert list(rs) == [(0, 15)]
    rs.add(20)
    rs.add(21)
    rs.add(19)
    assert list(rs) == [(0, 15), (19, 22)]
    rs.add(-5, 100)
    assert list(rs) == [(-5, 100)]
    rs.add(3, 3)  # empty: nothing
    assert len(rs) == 1
    with pytest.raises(UsageError):
        rs.add(5, 3)


def test_subtract():
    rs = RangeSet([(0, 10), (20, 30)])
    rs.subtract(3, 5)
    assert list(rs) == [(0, 3), (5, 10), (20, 30)]
    rs.subtract(8, 25)
    assert list(rs) == [(0, 3), (5, 8), (25, 30)]
    rs.subtract(0, 3)
    rs.subtract(29, 100)
    assert list(rs) == [(5, 8), (25, 29)]
    rs.discard_below(26)
    assert list(rs) == [(26, 29)]
    rs.subtract(26, 29)
    assert not rs and len(rs) == 0


def test_shift_pop_bounds_contains():
    rs = RangeSet([(1, 3), (5, 8), (10, 11)])
    assert rs.bounds() == (1, 11)
    assert 2 in rs and 3 not in rs and 10 in rs and 11 not in rs and 0 not in rs
    assert rs.covers(5, 8) and not rs.covers(4, 6) and rs.covers(6, 6)
    assert rs[0] == (1, 3) and rs[-1] == (10, 11)
    assert list(reversed(rs)) == [(10, 11), (5, 8), (1, 3)]
    assert rs.shift() == (1, 3)
    assert rs.pop() == (10, 11)
    assert list(rs) == [(5, 8)]
    rs.shift()
    for op in (rs.shift, rs.pop, rs.bounds, lambda: rs[0]):
        with pytest.raises(IndexError):
            op()


def test_cap_drops_the_lowest_ranges():
    rs = RangeSet(max_ranges=4)
    for pn in range(0, 20, 2):  # every other packet: one range each
        rs.add(pn)
    assert list(rs) == [(12, 13), (14, 15), (16, 17), (18, 19)]
    assert rs.dropped_ranges == 6
    rs.add(13, 18)  # merging frees room
    assert list(rs) == [(12, 19)]
    assert RangeSet().max_ranges == MAX_RANGES


def test_descending_feeds_an_ack_frame():
    rs = RangeSet()
    for pn in [0, 1, 2, 5, 6, 9]:
        rs.add(pn)
    assert rs.descending() == ((9, 10), (5, 7), (0, 3))
    assert rs.descending(2) == ((9, 10), (5, 7))
    assert rs.descending(0) == ()
    ack = Ack(rs.descending(), delay=3)
    parsed, _ = parse_frame(encode_frame(ack))
    assert RangeSet(parsed.ranges) == rs


ops = st.lists(
    st.tuples(st.sampled_from(["add", "sub"]), st.integers(0, 200), st.integers(0, 30)),
    max_size=60,
)


@given(ops)
def test_matches_a_plain_set(operations):
    rs = RangeSet()
    model: set[int] = set()
    for op, start, length in operations:
        if op == "add":
            if length:
                rs.add(start, start + length)
            model |= set(range(start, start + length))
        else:
            rs.subtract(start, start + length)
            model -= set(range(start, start + length))
        check_invariants(rs)
    assert as_set(rs) == model
    for x in range(0, 235, 7):
        assert (x in rs) == (x in model)


@given(ops, st.integers(1, 5))
def test_capped_set_keeps_the_highest_ranges(operations, cap):
    rs = RangeSet(max_ranges=cap)
    full = RangeSet(max_ranges=10_000)
    for op, start, length in operations:
        if op == "add" and length:
            rs.add(start, start + length)
            full.add(start, start + length)
        check_invariants(rs)
        assert len(rs) <= cap
    # Whatever survived is a subset of the truth, and the highest value is always kept
    # (the lowest part of a range dropped earlier may be missing after a merge).
    assert as_set(rs) <= as_set(full)
    if full:
        assert rs[-1][1] == full[-1][1] and full[-1][0] <= rs[-1][0]
