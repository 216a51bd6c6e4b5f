# pyquic.h3.frames: the HTTP/3 frame codec and the incremental parser.
#   - encode / decode round trips, known answers (RFC 9114 §7.1 layout);
#   - SETTINGS: duplicates and HTTP/2 identifiers are H3_SETTINGS_ERROR,
#     truncation H3_FRAME_ERROR;
#   - the parser fed byte by byte yields the same frames as fed whole; DATA
#     payload comes out before the frame is complete; unknown frames are
#     skipped without buffering; a frame cut by FIN is H3_FRAME_ERROR; a
#     buffered frame over its cap raises FrameTooLarge before buffering;
#   - property: on random input the parser raises nothing but H3Error, and
#     the bytes it hands out plus its overhead account for every byte.
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pyquic.h3 import frames as f
from pyquic.h3.errors import H3Error, H3ErrorCode


def parse_all(parser: f.FrameParser, data: bytes, fin: bool, step: int = 0) -> list:
    items = []
    chunks = [data[i:i + step] for i in range(0, len(data), step)] if step else [data]
    for i, chunk in enumerate(chunks or [b""]):
        parser.push(chunk, fin and i == len(chunks or [b""]) - 1)
        while (item := parser.next()) is not None:
            items.append(item)
    return items


def coalesce(items: list) -> list:
    """Join consecutive DATA chunks (feeding byte by byte splits them)."""
    out: list = []
    for item in items:
        if item[0] == f.DATA_CHUNK and out and out[-1][0] == f.DATA_CHUNK:
            out[-1] = (f.DATA_CHUNK, out[-1][1] + item[1])
        else:
            out.append(item)
    return out


def big_cap(frame_type: int) -> int:
    return 1 << 20


def test_known_answers():
    assert f.encode_frame(f.DATA, b"abc") == b"\x00\x03abc"
    assert f.encode_frame(f.HEADERS, b"") == b"\x01\x00"
    assert f.encode_frame(f.GOAWAY, b"\x04") == b"\x07\x01\x04"
    assert f.encode_settings({0x1: 4096, 0x6: 16384}) == b"\x01\x50\x00\x06\x80\x00\x40\x00"
    assert f.decode_settings(b"\x01\x50\x00\x06\x80\x00\x40\x00") == {0x1: 4096, 0x6: 16384}
    assert [f.grease_id(n) for n in range(3)] == [0x21, 0x40, 0x5F]
    assert all(f.is_grease(f.grease_id(n)) for n in range(100)) and not f.is_grease(0x22)
    assert f.parse_frames(b"\x00\x03abc\x21\x00\x07\x01\x04") == [(0, b"abc"), (0x21, b""), (7, b"\x04")]


@pytest.mark.parametrize("payload, code", [
    (b"\x01\x00\x01\x01", H3ErrorCode.H3_SETTINGS_ERROR),  # repeated
    (b"\x02\x00", H3ErrorCode.H3_SETTINGS_ERROR),  # SETTINGS_ENABLE_PUSH (HTTP/2)
    (b"\x03\x00", H3ErrorCode.H3_SETTINGS_ERROR),
    (b"\x04\x00", H3ErrorCode.H3_SETTINGS_ERROR),
    (b"\x05\x00", H3ErrorCode.H3_SETTINGS_ERROR),
    (b"\x01", H3ErrorCode.H3_FRAME_ERROR),  # identifier without value
    (b"\x01\x40", H3ErrorCode.H3_FRAME_ERROR),  # value truncated in its varint
])
def test_bad_settings(payload, code):
    with pytest.raises(H3Error) as info:
        f.decode_settings(payload)
    assert info.value.error_code == code


def test_single_varint_frames():
    assert f.decode_single_varint(b"\x44\x00", "GOAWAY") == 0x400
    for bad in (b"", b"\x44", b"\x00\x00"):
        with pytest.raises(H3Error) as info:
            f.decode_single_varint(bad, "GOAWAY")
        assert info.value.error_code == H3ErrorCode.H3_FRAME_ERROR


STREAM = (
    f.encode_frame(f.HEADERS, b"hdrs")
    + f.encode_frame(f.grease_id(7), b"x" * 300)  # unknown: skipped
    + f.encode_frame(f.DATA, b"A" * 1000)
    + f.encode_frame(f.DATA, b"")
    + f.encode_frame(f.HEADERS, b"trailers")
)


@pytest.mark.parametrize("step", [0, 1, 2, 7, 64])
def test_parser_any_split(step):
    items = coalesce(parse_all(f.FrameParser(big_cap), STREAM, fin=True, step=step))
    assert items == [
        (f.FRAME_START, f.HEADERS, 4), (f.FRAME, f.HEADERS, b"hdrs"),
        (f.FRAME_START, f.grease_id(7), 300),
        (f.FRAME_START, f.DATA, 1000), (f.DATA_CHUNK, b"A" * 1000),
        (f.FRAME_START, f.DATA, 0),
        (f.FRAME_START, f.HEADERS, 8), (f.FRAME, f.HEADERS, b"trailers"),
        (f.END,),
    ]


def test_data_streams_before_the_frame_is_complete():
    parser = f.FrameParser(big_cap)
    header = f.encode_frame_header(f.DATA, 1_000_000)
    parser.push(header + b"x" * 10)
    assert parser.next() == (f.FRAME_START, f.DATA, 1_000_000)
    assert parser.next() == (f.DATA_CHUNK, b"x" * 10)
    assert parser.next() is None and parser.buffered == 0
    parser.push(b"y" * 5)
    assert parser.next() == (f.DATA_CHUNK, b"y" * 5)
    assert parser.take_overhead() == len(header)


def test_unknown_frames_are_not_buffered():
    parser = f.FrameParser(lambda t: 10)  # a tiny cap for known frames
    parser.push(f.encode_frame_header(0x21, 1 << 40))
    assert parser.next() == (f.FRAME_START, 0x21, 1 << 40)
    for _ in range(100):
        parser.push(b"z" * 10_000)
        assert parser.next() is None
        assert parser.buffered == 0


def test_cap_refuses_before_buffering():
    parser = f.FrameParser(lambda t: 100)
    parser.push(f.encode_frame_header(f.HEADERS, 101))
    with pytest.raises(f.FrameTooLarge) as info:
        parser.next()
    assert (info.value.frame_type, info.value.length, info.value.cap) == (f.HEADERS, 101, 100)


@pytest.mark.parametrize("data", [
    f.encode_frame(f.HEADERS, b"abc")[:-1],  # payload cut
    b"\x00",  # type without length
    b"\x40",  # type varint cut
    f.encode_frame_header(f.DATA, 10) + b"12345",  # DATA cut
    f.encode_frame_header(0x21, 10) + b"12345",  # unknown frame cut
])
def test_truncated_by_fin_is_frame_error(data):
    parser = f.FrameParser(big_cap)
    with pytest.raises(H3Error) as info:
        parse_all(parser, data, fin=True)
    assert info.value.error_code == H3ErrorCode.H3_FRAME_ERROR


def test_signal_then_raw():
    parser = f.FrameParser(big_cap, signals=frozenset({f.WEBTRANSPORT_STREAM}))
    items = parse_all(parser, b"\x40\x41\x04payload", fin=True)
    assert items == [(f.SIGNAL, 0x41, 4), (f.RAW, b"payload"), (f.END,)]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40), st.booleans())
def test_parser_raises_only_h3_errors(data, step, fin):
    parser = f.FrameParser(lambda t: 64, signals=frozenset({0x41}))
    delivered = 0
    try:
        for item in parse_all(parser, data, fin=fin, step=step):
            if item[0] in (f.DATA_CHUNK, f.RAW):
                delivered += len(item[1])
    except H3Error as exc:
        assert exc.error_code in (H3ErrorCode.H3_FRAME_ERROR, H3ErrorCode.H3_EXCESSIVE_LOAD)
        return
    # Every byte is accounted for: delivered as payload, counted as overhead, or still buffered.
    assert delivered + parser.overhead + parser.buffered == len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_settings_decoder_raises_only_h3_errors(payload):
    try:
        settings_ = f.decode_settings(payload)
    except H3Error as exc:
        assert exc.error_code in (H3ErrorCode.H3_FRAME_ERROR, H3ErrorCode.H3_SETTINGS_ERROR)
    else:
        assert f.decode_settings(f.encode_settings(settings_)) == settings_


def _trace(parser: f.FrameParser, chunks: list, fin: bool) -> list:
    """Every item, and what is buffered after each push, or the error."""
    out: list = []
    try:
        for i, chunk in enumerate(chunks):
            parser.push(chunk, fin and i == len(chunks) - 1)
            out.append(("buffered", parser.buffered))
            while (item := parser.next()) is not None:
                out.append(tuple(bytes(x) if isinstance(x, (bytes, bytearray, memoryview)) else x for x in item))
                out.append(("buffered", parser.buffered, parser.overhead))
    except H3Error as exc:
        out.append(("error", exc.error_code))
    return out


@st.composite
def framed_streams(draw):
    """Frames (mostly DATA, some HEADERS and unknown ones, sometimes cut short) split into chunks."""
    data = b"".join(
        f.encode_frame(draw(st.sampled_from([f.DATA, f.DATA, f.HEADERS, 0x21])), draw(st.binary(max_size=120)))
        for _ in range(draw(st.integers(0, 6)))
    )
    data += draw(st.binary(max_size=4))  # perhaps a frame cut short
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])], draw(st.booleans())


@settings(max_examples=400, deadline=None)
@given(framed_streams())
def test_held_chunks_give_what_copied_ones_do(stream):
    # bytes are held and handed out uncopied where they are DATA payload;
    # a bytearray is always copied in: both must give the same items.
    chunks, fin = stream
    held = _trace(f.FrameParser(big_cap), chunks, fin)
    copied = _trace(f.FrameParser(big_cap), [bytearray(c) for c in chunks], fin)
    assert held == copied


def test_data_payload_in_its_own_chunk_is_handed_out_uncopied():
    parser = f.FrameParser(big_cap)
    parser.push(f.encode_frame_header(f.DATA, 3000) + b"x" * 1000)
    assert parser.next() == (f.FRAME_START, f.DATA, 3000)
    assert parser.next() == (f.DATA_CHUNK, b"x" * 1000)
    middle = b"y" * 1500
    parser.push(middle)
    item = parser.next()
    assert item == (f.DATA_CHUNK, middle) and item[1] is middle
    # The chunk that ends the frame and starts the next: the payload part, then the rest parsed.
    parser.push(b"z" * 500 + f.encode_frame(f.DATA, b"abc"))
    assert parser.next() == (f.DATA_CHUNK, b"z" * 500)
    assert parser.buffered == 5
    assert parser.next() == (f.FRAME_START, f.DATA, 3)
    assert parser.next() == (f.DATA_CHUNK, b"abc")
    assert parser.next() is None and parser.buffered == 0
