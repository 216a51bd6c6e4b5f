# pyquic/assembler.py: out-of-order reassembly against a reference model
# (a bytearray and a set of received offsets), the zero-copy reads, the
# two caps (bytes beyond the read offset, number of chunks), and the
# accounting of what held chunks cost beyond their bytes (ReassemblyBudget).
import os
import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyquic.assembler import (
    CHUNK_OVERHEAD,
    DEFAULT_MAX_CHUNKS,
    VIEW_CHUNK_OVERHEAD,
    Assembler,
    AssemblerLimitError,
    ReassemblyBudget,
    chunk_overhead,
)
from pyquic.errors import ErrorCode, TransportError


def test_in_order_reads_return_the_added_object():
    a = Assembler(max_buffered=1000)
    chunk = b"hello"
    a.add(0, chunk)
    assert a.has_data
    assert a.read() is chunk
    assert a.read_offset == 5 and a.buffered == 0 and not a.has_data
    assert a.read() == b""


def test_out_of_order_then_gap_filled_joins():
    a = Assembler(max_buffered=1000)
    a.add(5, b"world")
    assert not a.has_data and a.read() == b""
    assert a.buffered == 5 and a.highest_offset == 10
    a.add(0, b"hello")
    assert a.read() == b"helloworld"
    assert a.read_offset == 10 and len(a) == 0


def test_duplicates_and_already_read_data_are_dropped():
    a = Assembler(max_buffered=1000)
    a.add(0, b"abc")
    a.read()
    a.add(0, b"abc")  # entirely below the read offset
    a.add(1, b"bcdef")  # partly below
    assert a.read() == b"def"
    a.add(10, b"klm")
    a.add(10, b"klm")
    a.add(11, b"l")  # inside a held chunk
    assert len(a) == 1 and a.buffered == 3


def test_overlaps_are_trimmed_and_covered_chunks_replaced():
    data = bytes(range(100))
    a = Assembler(max_buffered=1000)
    a.add(10, data[10:20])
    a.add(30, data[30:40])
    a.add(50, data[50:55])
    # Covers [30, 40) and [50, 55) entirely, overlaps the tail of [10, 20).
    a.add(15, data[15:60])
    assert len(a) == 2 and a.buffered == 50
    a.add(5, data[5:12])  # overlaps the head of [10, 20)
    a.add(0, data[0:5])
    assert a.read() == data[:60]
    assert a.buffered == 0


def test_read_with_a_limit_splits_a_chunk_without_copying_the_rest():
    a = Assembler(max_buffered=1000)
    a.add(0, b"0123456789")
    a.add(10, b"abcdef")
    assert a.read(4) == b"0123"
    assert a.read(8) == b"456789ab"
    assert a.read_offset == 12 and a.buffered == 4
    assert bytes(a.read()) == b"cdef"
    assert a.read(0) == b""


def test_max_buffered_is_a_window_beyond_the_read_offset():
    a = Assembler(max_buffered=10, error=TransportError.CRYPTO_BUFFER_EXCEEDED)
    a.add(5, b"x" * 5)  # ends exactly at the window
    with pytest.raises(TransportError) as info:
        a.add(9, b"xx")
    assert info.value.code == ErrorCode.CRYPTO_BUFFER_EXCEEDED
    a.add(0, b"y" * 5)
    assert a.read() == b"yyyyyxxxxx"
    a.add(15, b"z" * 5)  # the window moved with the read offset
    with pytest.raises(AssemblerLimitError):
        Assembler(max_buffered=4).add(0, b"12345")


def test_chunk_cap_joins_contiguous_chunks_then_refuses_fragmentation():
    a = Assembler(max_buffered=1 << 20, max_chunks=8)
    # Contiguous pieces after a gap: compaction keeps them as one.
    for i in range(1, 40):
        a.add(i, b"x")
    assert len(a) <= 8
    a.add(0, b"y")
    assert a.read() == b"y" + b"x" * 39
    # Pieces with gaps between them cannot be joined: refused past half the cap.
    b = Assembler(max_buffered=1 << 20, max_chunks=8, error=TransportError.PROTOCOL_VIOLATION)
    with pytest.raises(TransportError) as info:
        for i in range(1, 20):
            b.add(2 * i, b"x")
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION
    assert DEFAULT_MAX_CHUNKS >= 1024


def test_clear_keeps_offsets():
    a = Assembler(max_buffered=100)
    a.add(0, b"ab")
    a.read()
    a.add(5, b"cd")
    a.clear()
    assert a.read_offset == 2 and a.buffered == 0 and len(a) == 0


def test_memoryview_input_is_accepted():
    data = memoryview(b"0123456789")
    a = Assembler(max_buffered=100)
    a.add(3, data[3:])
    a.add(0, data[:5])
    assert a.read() == b"0123456789"


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=300),
    cuts=st.integers(0, 60),
    extras=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=20),
    seed=st.integers(0, 2**32),
    read_every=st.integers(1, 8),
    max_chunks=st.sampled_from([4, 8, 64]),
)
def test_random_chunking_and_order_reassembles_exactly(data, cuts, extras, seed, read_every, max_chunks):
    """The data cut at random points, plus random overlapping and duplicate
    pieces, added in any order with reads in between, yields exactly the
    data -- or a limit error only when the model says the unread data really
    is in more pieces than the cap allows."""
    n = len(data)
    rng = random.Random(seed)
    bounds = sorted({0, n, *rng.sample(range(n + 1), min(cuts, n + 1))})
    pieces = list(zip(bounds, bounds[1:]))
    pieces += [(min(a, b) % (n + 1), max(a, b) % (n + 1)) for a, b in extras]
    pieces = [(s, e) for s, e in pieces if s < e]
    rng.shuffle(pieces)
    budget = ReassemblyBudget(1 << 30)
    a = Assembler(max_buffered=max(n, 1), max_chunks=max_chunks, budget=budget)
    out = bytearray()
    held: set[int] = set()  # the model: offsets received and not yet read
    for k, (s, e) in enumerate(pieces):
        held.update(range(max(s, len(out)), e))
        try:
            a.add(s, data[s:e] if k % 2 else memoryview(data)[s:e])
        except AssemblerLimitError:
            # Only when the unread data really is in more pieces than half the cap.
            runs = sum(1 for i in held if i - 1 not in held)
            assert runs > max_chunks // 2
            return
        assert a.buffered == len(held)
        assert a.overhead == budget.used == sum(map(chunk_overhead, a._chunks))
        if k % read_every == 0:
            got = a.read(rng.choice([None, 1, 7, 50]))
            held.difference_update(range(len(out), len(out) + len(got)))
            out += got
            assert bytes(out) == data[: len(out)]
            assert a.overhead == budget.used == sum(map(chunk_overhead, a._chunks))
        if k % 5 == 4:
            a.join_runs()
            assert a.overhead == budget.used == sum(map(chunk_overhead, a._chunks))
    out += a.read()
    assert bytes(out) == data
    assert a.read_offset == n and a.buffered == 0 and len(a) == 0
    assert a.overhead == 0 and budget.used == 0


# --- what held chunks cost: the ReassemblyBudget --------------------------------------


def budgeted(limit=1 << 20, **kwargs):
    budget = ReassemblyBudget(limit, **kwargs)
    return Assembler(max_buffered=1 << 20, budget=budget), budget


def test_each_held_chunk_is_charged_and_reading_releases_it():
    a, budget = budgeted()
    a.add(10, b"x" * 10)
    a.add(30, b"y" * 10)
    assert a.overhead == budget.used == 2 * CHUNK_OVERHEAD
    a.add(30, b"y" * 10)  # a duplicate costs nothing
    a.add(12, b"x")  # nor does data inside a held chunk
    assert budget.used == 2 * CHUNK_OVERHEAD
    a.add(0, b"z" * 10)
    assert budget.used == 3 * CHUNK_OVERHEAD
    assert a.read() == b"z" * 10 + b"x" * 10  # two chunks read: released
    assert a.overhead == budget.used == CHUNK_OVERHEAD
    a.add(20, b"w" * 10)
    assert a.read() == b"w" * 10 + b"y" * 10
    assert a.overhead == budget.used == 0


def test_in_order_data_through_the_fast_path_is_never_charged():
    a, budget = budgeted(limit=0)  # not even one chunk may be held
    for i in range(100):
        assert a.add_and_read(i * 10, b"0123456789") == b"0123456789"
    assert budget.used == 0 and a.read_offset == 1000


def test_one_budget_is_shared_by_several_assemblers():
    budget = ReassemblyBudget(1 << 20)
    one = Assembler(max_buffered=1000, budget=budget)
    two = Assembler(max_buffered=1000, budget=budget)
    one.add(5, b"a")
    two.add(5, b"b")
    two.add(7, b"c")
    assert budget.used == one.overhead + two.overhead == 3 * CHUNK_OVERHEAD
    two.clear()  # e.g. RESET_STREAM
    assert budget.used == one.overhead == CHUNK_OVERHEAD
    one.clear()
    assert budget.used == 0


def test_covered_chunks_are_released_when_a_larger_piece_replaces_them():
    a, budget = budgeted()
    for i in range(10):
        a.add(10 + 2 * i, b"x")
    assert budget.used == 10 * CHUNK_OVERHEAD
    a.add(9, b"x" * 21)  # covers all ten
    assert len(a) == 1 and a.overhead == budget.used == CHUNK_OVERHEAD


def test_a_trimmed_chunk_is_charged_for_the_buffer_it_keeps_alive():
    a, budget = budgeted()
    a.add(100, b"h" * 100)
    big = b"n" * 100
    a.add(50, big)  # its tail overlaps [100, 200): kept as a view of the first 50 bytes
    view = a._chunks[0]
    assert type(view) is memoryview and view.obj is big and len(view) == 50
    assert chunk_overhead(view) == VIEW_CHUNK_OVERHEAD + 50
    assert a.overhead == budget.used == CHUNK_OVERHEAD + VIEW_CHUNK_OVERHEAD + 50
    a.join_runs()  # one contiguous run now: joined into new bytes, the view is gone
    assert len(a) == 1 and type(a._chunks[0]) is bytes
    assert a.overhead == budget.used == CHUNK_OVERHEAD


def test_a_split_read_charges_the_tail_left_behind():
    a, budget = budgeted()
    a.add(0, b"0123456789")
    assert a.read(4) == b"0123"
    assert a.overhead == budget.used == VIEW_CHUNK_OVERHEAD + 4  # the view pins all ten bytes
    assert bytes(a.read()) == b"456789"
    assert budget.used == 0


def test_overflow_joins_contiguous_chunks_before_giving_up():
    # Contiguous pieces behind a gap (one packet lost): joining frees them.
    a, budget = budgeted(limit=20 * CHUNK_OVERHEAD)
    for i in range(1, 500):
        a.add(i * 10, b"x" * 10)
    assert budget.used <= budget.limit
    a.add(0, b"y" * 10)
    assert a.read() == b"y" * 10 + b"x" * 4990 and budget.used == 0


def test_overflow_with_scattered_pieces_is_an_error():
    a, budget = budgeted(limit=20 * CHUNK_OVERHEAD, error=TransportError.PROTOCOL_VIOLATION)
    with pytest.raises(TransportError) as info:
        for i in range(1, 100):
            a.add(2 * i, b"x")
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION
    assert i == 21  # the 21st separate piece passed the limit
    assert budget.used == a.overhead  # still consistent: cleared, it all comes back
    a.clear()
    assert budget.used == 0


def test_overflow_must_leave_a_quarter_of_the_limit_free():
    # 16 separate pieces plus 5 contiguous ones: joining frees 4 chunks,
    # leaving 17 > 3/4 of 20 -- refused rather than joined again at every add.
    a, budget = budgeted(limit=20 * CHUNK_OVERHEAD)
    for i in range(16):
        a.add(1000 + 2 * i, b"x")
    with pytest.raises(AssemblerLimitError):
        for i in range(10):
            a.add(100 + i, b"x")
    # With more of them contiguous, joining leaves enough room.
    b, budget = budgeted(limit=20 * CHUNK_OVERHEAD)
    for i in range(10):
        b.add(1000 + 2 * i, b"x")
    for i in range(50):
        b.add(100 + i, b"x")
    assert len(b) <= 20 and budget.used <= budget.limit


def test_overflow_calls_relieve_which_may_free_other_assemblers():
    calls = []
    budget = ReassemblyBudget(10 * CHUNK_OVERHEAD, relieve=lambda: calls.append(1) or other.join_runs())
    other = Assembler(max_buffered=1000, budget=budget)
    mine = Assembler(max_buffered=1000, budget=budget)
    for i in range(1, 10):
        other.add(i, b"o")  # contiguous behind a gap: joinable
    mine.add(5, b"m")
    assert not calls
    mine.add(7, b"m")  # the 11th chunk: relieve joins the other's nine into one
    assert calls == [1] and budget.used == 3 * CHUNK_OVERHEAD


def test_the_overhead_estimate_is_not_below_the_traced_cost():
    """CHUNK_OVERHEAD and VIEW_CHUNK_OVERHEAD against tracemalloc on this
    Python: what held chunks cost, less the payload bytes flow control counts."""
    n = 5000
    for size in (1, 2, 100, 1100):
        a = Assembler(max_buffered=1 << 40, max_chunks=1 << 30)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for k in range(n):
                a.add((1 << 33) + 2 * k * size, os.urandom(size))  # fresh bytes, as parsed from a packet
            traced = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert a.overhead == n * CHUNK_OVERHEAD
        assert traced - n * size <= a.overhead, (size, traced / n)
    # Views: each trimmed to half of a fresh 200-byte object it keeps alive.
    a = Assembler(max_buffered=1 << 40, max_chunks=1 << 30)
    for k in range(n):
        a.add((1 << 33) + 500 * k + 100, b"h" * 200)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(n):
            a.add((1 << 33) + 500 * k, os.urandom(200))
        traced = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    views = [c for c in a._chunks if type(c) is memoryview]
    assert len(views) == n
    assert traced - n * 100 <= sum(map(chunk_overhead, views)), traced / n


def test_budget_rejects_a_negative_limit():
    with pytest.raises(ValueError):
        ReassemblyBudget(-1)
