# pyquic/assembler.py: out-of-order reassembly against a reference model
# (a bytearray and a set of received offsets), the zero-copy reads, and the
# two caps (bytes beyond the read offset, number of chunks).
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyquic.assembler import DEFAULT_MAX_CHUNKS, Assembler, AssemblerLimitError
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
    a = Assembler(max_buffered=max(n, 1), max_chunks=max_chunks)
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
        if k % read_every == 0:
            got = a.read(rng.choice([None, 1, 7, 50]))
            held.difference_update(range(len(out), len(out) + len(got)))
            out += got
            assert bytes(out) == data[: len(out)]
    out += a.read()
    assert bytes(out) == data
    assert a.read_offset == n and a.buffered == 0 and len(a) == 0
