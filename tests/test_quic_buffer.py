# pyquic.buffer: RFC 9000 §16 / A.1 varints (known answers from the shared
# vectors), minimal encodings, the range limits of Table 4, fixed integers,
# length-prefixed bytes, truncation (only BufferReadError escapes a reader).
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyquic.buffer import (
    VARINT_MAX,
    BufferReadError,
    Reader,
    Writer,
    decode_varint,
    encode_varint,
    encode_varint_sized,
    varint_size,
)
from pyquic.errors import UsageError

from .vectors import h, load

A = load("rfc9000_appendix_a.json")


@pytest.mark.parametrize("case", A["varint_decoding_examples"], ids=lambda c: c["encoded"])
def test_rfc9000_a1_decoding(case):
    data = h(case["encoded"])
    assert decode_varint(data, 0) == (case["value"], len(data))
    reader = Reader(data)
    assert reader.pull_varint() == case["value"] and reader.eof()


@pytest.mark.parametrize("case", A["varint_decoding_examples"], ids=lambda c: c["encoded"])
def test_rfc9000_a1_minimal_reencoding(case):
    encoded = encode_varint(case["value"])
    assert len(encoded) == varint_size(case["value"])
    if "non-minimal" in case.get("note", ""):
        assert encoded == b"\x25" and len(encoded) < len(h(case["encoded"]))
    else:
        assert encoded == h(case["encoded"])


@pytest.mark.parametrize("row", A["varint_ranges"], ids=lambda r: str(r["length"]))
def test_table4_range_limits(row):
    length, top = row["length"], row["max"]
    assert varint_size(top) == length
    assert encode_varint(top)[0] >> 6 == int(row["two_msb"], 2)
    assert decode_varint(encode_varint(top), 0) == (top, length)
    if length < 8:
        assert varint_size(top + 1) == length * 2
    # The same top value forced into a wider encoding still decodes (non-minimal).
    for wider in (1, 2, 4, 8):
        if wider >= length:
            assert decode_varint(encode_varint_sized(top, wider), 0) == (top, wider)


@pytest.mark.parametrize("bad", [-1, VARINT_MAX + 1, 1 << 64])
def test_out_of_range_values_are_usage_errors(bad):
    with pytest.raises(UsageError):
        encode_varint(bad)
    with pytest.raises(UsageError):
        varint_size(bad)
    with pytest.raises(UsageError):
        Writer().push_varint(bad)


def test_sized_encoding_limits():
    with pytest.raises(UsageError):
        encode_varint_sized(64, 1)
    with pytest.raises(UsageError):
        encode_varint_sized(1, 3)
    assert encode_varint_sized(37, 2) == b"\x40\x25"


@given(st.integers(min_value=0, max_value=VARINT_MAX))
def test_varint_round_trip(value):
    encoded = encode_varint(value)
    assert len(encoded) == varint_size(value)
    assert decode_varint(encoded + b"junk", 0) == (value, len(encoded))
    writer = Writer()
    writer.push_varint(value)
    assert bytes(writer.data) == encoded


@pytest.mark.parametrize("encoded", ["40", "80ffff", "c0000000000000", ""])
def test_truncated_varint(encoded):
    with pytest.raises(BufferReadError):
        decode_varint(h(encoded), 0)
    with pytest.raises(BufferReadError):
        Reader(h(encoded)).pull_varint()


def test_reader_respects_its_end_not_the_data():
    data = b"\x80\x00\x00\x01rest"
    with pytest.raises(BufferReadError):
        Reader(data, 0, 2).pull_varint()
    with pytest.raises(BufferReadError):
        Reader(data, 0, 3).pull_bytes(4)
    assert Reader(data, 0, 4).pull_varint() == 1


def test_fixed_integers_and_bytes_round_trip():
    w = Writer()
    w.push_uint8(0xAB)
    w.push_uint16(0xBEEF)
    w.push_uint32(0xDEADBEEF)
    w.push_uint64(0x0102030405060708)
    w.push_uint8_bytes(b"cid")
    w.push_varint_bytes(b"x" * 70)
    w.push_bytes(b"tail")
    r = Reader(w.getvalue())
    assert r.pull_uint8() == 0xAB
    assert r.pull_uint16() == 0xBEEF
    assert r.pull_uint32() == 0xDEADBEEF
    assert r.pull_uint64() == 0x0102030405060708
    assert r.pull_uint8_bytes() == b"cid"
    assert r.pull_varint_bytes() == b"x" * 70
    assert r.remaining() == 4
    sub = r.sub_reader(2)
    assert sub.pull_rest() == b"ta" and r.pull_rest() == b"il" and r.eof()


def test_reserve_and_patch_a_varint():
    w = Writer()
    w.push_uint8(1)
    at = w.reserve_varint(2)
    w.push_bytes(b"payload")
    w.patch_varint(at, 1000, 2)
    r = Reader(w.getvalue())
    r.skip(1)
    assert r.pull_varint() == 1000 and r.pull_rest() == b"payload"


def test_memoryview_input():
    data = memoryview(b"\x00\xc2\x19\x7c\x5e\xff\x14\xe8\x8c")
    assert decode_varint(data, 1) == (151288809941952652, 9)
    assert Reader(data, 1).pull_bytes(2) == b"\xc2\x19"


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=12))
def test_truncated_reads_raise_only_buffer_read_error(data, n):
    r = Reader(data)
    ops = [r.pull_varint, r.pull_uint16, r.pull_uint32, r.pull_uint8_bytes, r.pull_varint_bytes, lambda: r.pull_bytes(n)]
    for op in ops * 3:
        try:
            op()
        except BufferReadError:
            pass
    assert r.pos <= len(data)
