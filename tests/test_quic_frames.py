# pyquic.frames: every frame type round-trips; the RFC 9000 §12.4 legality
# table is checked over every (frame type, packet type) pair, both through
# check_frame_allowed and through the parser; truncated and random payloads
# raise only TransportError; the §19 field checks; the ACK range cap; PADDING
# runs; ack-eliciting / in-flight classification.
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyquic import frames as F
from pyquic.buffer import encode_varint_sized
from pyquic.errors import ErrorCode, TransportError, UsageError
from pyquic.packet import PacketType

FEE = ErrorCode.FRAME_ENCODING_ERROR
PV = ErrorCode.PROTOCOL_VIOLATION
PACKETS = [PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.ONE_RTT]

# One frame of every wire type (the key), with `last` for the encoders that can omit a length.
SAMPLES = {
    0x00: (F.Padding(3), False),
    0x01: (F.Ping(), False),
    0x02: (F.Ack(((100, 105), (90, 98), (0, 1)), delay=1234), False),
    0x03: (F.Ack(((7, 8),), delay=0, ecn=(10, 2, 1 << 40)), False),
    0x04: (F.ResetStream(4, 0x1234, 1 << 50), False),
    0x05: (F.StopSending(9, 77), False),
    0x06: (F.Crypto(1 << 20, b"\x01" * 300), False),
    0x07: (F.NewToken(b"token" * 9), False),
    0x08: (F.Stream(0, 0, b"abc"), True),
    0x09: (F.Stream(1, 0, b"", True), True),
    0x0A: (F.Stream(2, 0, b"data"), False),
    0x0B: (F.Stream(3, 0, b"x" * 70, True), False),
    0x0C: (F.Stream(4, 99, b"y"), True),
    0x0D: (F.Stream(5, 1 << 40, b"z", True), True),
    0x0E: (F.Stream(1 << 61, 1 << 30, b"w" * 5), False),
    0x0F: (F.Stream(7, 12, b"", True), False),
    0x10: (F.MaxData(1 << 61), False),
    0x11: (F.MaxStreamData(8, 65536), False),
    0x12: (F.MaxStreams(True, 1 << 60), False),
    0x13: (F.MaxStreams(False, 3), False),
    0x14: (F.DataBlocked(1000), False),
    0x15: (F.StreamDataBlocked(12, 5), False),
    0x16: (F.StreamsBlocked(True, 100), False),
    0x17: (F.StreamsBlocked(False, 1 << 60), False),
    0x18: (F.NewConnectionId(5, 3, b"c" * 20, b"r" * 16), False),
    0x19: (F.RetireConnectionId(2), False),
    0x1A: (F.PathChallenge(b"12345678"), False),
    0x1B: (F.PathResponse(b"87654321"), False),
    0x1C: (F.ConnectionClose(0x0A, 0x08, "bad stream ✓"), False),
    0x1D: (F.ConnectionClose(0x100, 0, "app says bye", application=True), False),
    0x1E: (F.HandshakeDone(), False),
    0x30: (F.Datagram(b"unreliable", False), True),
    0x31: (F.Datagram(b"unreliable"), False),
}


def encoded(frame_type):
    frame, last = SAMPLES[frame_type]
    out = bytearray()
    frame.encode(out, last=True) if last else frame.encode(out)
    return bytes(out)


def code_of(excinfo):
    return excinfo.value.code


def test_every_known_frame_type_has_a_sample():
    assert set(SAMPLES) == set(F.KNOWN_FRAME_TYPES)


@pytest.mark.parametrize("frame_type", sorted(SAMPLES), ids=hex)
def test_round_trip(frame_type):
    frame, _ = SAMPLES[frame_type]
    wire = encoded(frame_type)
    assert wire[0] == frame_type
    parsed, end = F.parse_frame(wire)
    assert end == len(wire)
    assert parsed == frame and type(parsed) is type(frame)
    # parse_frames over the packet type(s) that allow it.
    ptype = PacketType.ONE_RTT
    assert F.parse_frames(wire, ptype).frames == [frame]
    assert type(frame).TYPE <= frame_type
    assert F.encode_frame(frame) == wire or SAMPLES[frame_type][1]


def test_many_frames_in_one_payload():
    # Frames without a length must come last; everything else in sequence.
    payload = b"".join(encoded(t) for t in sorted(SAMPLES) if not SAMPLES[t][1]) + encoded(0x08)
    frames = F.parse_frames(payload, PacketType.ONE_RTT).frames
    expected = [SAMPLES[t][0] for t in sorted(SAMPLES) if not SAMPLES[t][1]] + [SAMPLES[0x08][0]]
    assert frames == expected


def test_frames_compare_by_class():
    assert F.Ping() != F.HandshakeDone()
    assert F.MaxData(5) != F.DataBlocked(5)
    assert F.MaxData(5) == F.MaxData(5) and hash(F.MaxData(5)) == hash(F.MaxData(5))
    assert len({F.Ping(), F.HandshakeDone(), F.Ping()}) == 2


# --- the legality table (RFC 9000 §12.4 Table 3, §12.5; RFC 9221 §4) --------------------
# Written out again here from the RFC, independently of frames.py's copy.
I, Z, H, O = PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.ONE_RTT
EXPECTED = {
    0x00: {I, H, Z, O},
    0x01: {I, H, Z, O},
    0x02: {I, H, O},
    0x03: {I, H, O},
    0x04: {Z, O},
    0x05: {Z, O},
    0x06: {I, H, O},
    0x07: {O},
    **{t: {Z, O} for t in range(0x08, 0x19)},
    0x19: {O},  # Table 3 says __01; §12.5 lets a server reject it in 0-RTT, and we do
    0x1A: {Z, O},
    0x1B: {O},
    0x1C: {I, H, Z, O},
    0x1D: {Z, O},
    0x1E: {O},
    0x30: {Z, O},
    0x31: {Z, O},
}


@pytest.mark.parametrize("packet_type", PACKETS, ids=lambda p: p.name)
@pytest.mark.parametrize("frame_type", list(range(0x40)) + [0x4001, 0x7FFF, 0x80000000], ids=hex)
def test_legality_of_every_pair(frame_type, packet_type):
    if frame_type not in EXPECTED:
        with pytest.raises(TransportError) as info:
            F.check_frame_allowed(frame_type, packet_type)
        assert code_of(info) == FEE  # §12.4: unknown frame type
        return
    allowed = packet_type in EXPECTED[frame_type]
    assert (packet_type in F.FRAME_PACKETS[frame_type]) == allowed
    if allowed:
        F.check_frame_allowed(frame_type, packet_type)
    else:
        with pytest.raises(TransportError) as info:
            F.check_frame_allowed(frame_type, packet_type)
        assert code_of(info) == PV and info.value.frame_type == frame_type
    # The parser applies the same table to a well-formed frame of that type.
    wire = encoded(frame_type)
    if allowed:
        assert F.parse_frames(wire, packet_type).frames == [SAMPLES[frame_type][0]]
    else:
        with pytest.raises(TransportError) as info:
            F.parse_frames(wire, packet_type)
        assert code_of(info) == PV and info.value.frame_type == frame_type


@given(
    st.sampled_from(sorted(EXPECTED)),
    st.sampled_from(PACKETS),
    st.sampled_from([None, True, False]),
    st.lists(st.sampled_from([0x00, 0x01]), max_size=3),
)
def test_legality_inside_a_payload(frame_type, packet_type, from_server, before):
    """Wherever the frame sits in the payload, legality and the sender's role decide."""
    payload = b"".join(encoded(t) for t in before) + encoded(frame_type)
    server_only = frame_type in (0x07, 0x1E)
    ok = packet_type in EXPECTED[frame_type] and not (server_only and from_server is False)
    if ok:
        F.parse_frames(payload, packet_type, from_server=from_server)
    else:
        with pytest.raises(TransportError) as info:
            F.parse_frames(payload, packet_type, from_server=from_server)
        assert code_of(info) == PV


def test_server_only_frames_from_a_client():
    for frame_type in (0x07, 0x1E):
        F.check_frame_allowed(frame_type, PacketType.ONE_RTT, from_server=True)
        with pytest.raises(TransportError) as info:
            F.check_frame_allowed(frame_type, PacketType.ONE_RTT, from_server=False)
        assert code_of(info) == PV


def test_packets_without_frames_are_usage_errors():
    for ptype in (PacketType.RETRY, PacketType.VERSION_NEGOTIATION, PacketType.UNKNOWN_VERSION):
        with pytest.raises(UsageError):
            F.check_frame_allowed(0x01, ptype)
        with pytest.raises(UsageError):
            F.parse_frames(b"\x01", ptype)


def test_classification_tables():
    not_eliciting = {0x00, 0x02, 0x03, 0x1C, 0x1D}
    for t in EXPECTED:
        assert F.is_ack_eliciting(t) == (t not in not_eliciting)
        assert F.counts_in_flight(t) == (t not in {0x02, 0x03, 0x1C, 0x1D})
        assert F.is_probing(t) == (t in {0x00, 0x18, 0x1A, 0x1B})
    assert F.FLOW_CONTROLLED_FRAME_TYPES == frozenset(range(0x08, 0x10))


@pytest.mark.parametrize(
    "payload,eliciting,in_flight",
    [
        (encoded(0x02), False, False),
        (encoded(0x02) + encoded(0x00), False, True),
        (encoded(0x1C), False, False),
        (encoded(0x02) + encoded(0x01), True, True),
        (encoded(0x06), True, True),
        (encoded(0x08), True, True),
    ],
)
def test_payload_flags(payload, eliciting, in_flight):
    parsed = F.parse_frames(payload, PacketType.ONE_RTT)
    assert (parsed.ack_eliciting, parsed.in_flight) == (eliciting, in_flight)


# --- errors -----------------------------------------------------------------------------


def test_empty_payload_is_a_protocol_violation():
    with pytest.raises(TransportError) as info:
        F.parse_frames(b"", PacketType.ONE_RTT)
    assert code_of(info) == PV  # §12.4


@pytest.mark.parametrize("frame_type", [0x01, 0x08, 0x1E, 0x31])
@pytest.mark.parametrize("size", [2, 4, 8])
def test_non_minimal_frame_type(frame_type, size):
    # §12.4: frame types use the shortest encoding; we treat longer as PROTOCOL_VIOLATION.
    body = encoded(frame_type)[1:]
    with pytest.raises(TransportError) as info:
        F.parse_frames(encode_varint_sized(frame_type, size) + body, PacketType.ONE_RTT)
    assert code_of(info) == PV and info.value.frame_type == frame_type
    with pytest.raises(TransportError):
        F.parse_frame(encode_varint_sized(frame_type, size) + body)


@pytest.mark.parametrize("wire", ["1f", "20", "2f", "32", "3f", "4020", "80001000", "c000000000000040", "40"])
def test_unknown_or_truncated_frame_types(wire):
    with pytest.raises(TransportError) as info:
        F.parse_frames(bytes.fromhex(wire), PacketType.ONE_RTT)
    assert code_of(info) == FEE


@pytest.mark.parametrize("frame_type", sorted(SAMPLES), ids=hex)
def test_every_truncation_raises_only_frame_encoding_error(frame_type):
    wire = encoded(frame_type)
    for cut in range(1, len(wire)):
        try:
            frames = F.parse_frames(wire[:cut], PacketType.ONE_RTT).frames
        except TransportError as exc:
            assert exc.code == FEE and exc.frame_type == frame_type
        else:
            # Only frames that run to the end of the packet (or PADDING runs) survive a cut.
            assert frame_type in (0x00, 0x08, 0x09, 0x0C, 0x0D, 0x30)
            assert len(frames) == 1


@given(st.binary(max_size=120), st.sampled_from(PACKETS), st.sampled_from([None, True, False]))
def test_random_payloads_raise_only_transport_errors(data, packet_type, from_server):
    try:
        F.parse_frames(data, packet_type, from_server=from_server)
    except TransportError as exc:
        assert exc.code in (FEE, PV)


@given(st.sampled_from(sorted(SAMPLES)), st.binary(max_size=12), st.integers(min_value=1, max_value=40))
def test_mutated_frames_raise_only_transport_errors(frame_type, junk, cut):
    wire = encoded(frame_type)
    for payload in (wire[:cut] + junk, wire + junk, junk + wire):
        try:
            F.parse_frames(payload, PacketType.ONE_RTT)
        except TransportError:
            pass


def _ack_wire(largest, first, ranges, ecn=None):
    from pyquic.buffer import encode_varint as v

    wire = bytes((0x03 if ecn else 0x02,)) + v(largest) + v(0) + v(len(ranges)) + v(first)
    for gap, length in ranges:
        wire += v(gap) + v(length)
    if ecn:
        wire += b"".join(v(x) for x in ecn)
    return wire


def test_ack_ranges_decode():
    # largest 20, first range 2 -> [18, 20]; gap 1 -> next largest 15, length 3 -> [12, 15]
    ack = F.parse_frames(_ack_wire(20, 2, [(1, 3)]), PacketType.INITIAL).frames[0]
    assert ack.ranges == ((18, 21), (12, 16)) and ack.largest_acknowledged == 20
    assert F.encode_frame(ack) == _ack_wire(20, 2, [(1, 3)])


@pytest.mark.parametrize("wire", [_ack_wire(5, 6, []), _ack_wire(10, 2, [(7, 0)]), _ack_wire(10, 2, [(0, 7)])])
def test_ack_below_zero(wire):
    with pytest.raises(TransportError) as info:
        F.parse_frames(wire, PacketType.ONE_RTT)
    assert code_of(info) == FEE  # §19.3.1


def test_ack_range_cap():
    ranges = [(0, 0)] * (F.MAX_ACK_RANGES - 1)
    ok = _ack_wire(10 * F.MAX_ACK_RANGES, 0, ranges)
    assert len(F.parse_frames(ok, PacketType.ONE_RTT).frames[0].ranges) == F.MAX_ACK_RANGES
    over = _ack_wire(10 * F.MAX_ACK_RANGES, 0, ranges + [(0, 0)])
    with pytest.raises(TransportError) as info:
        F.parse_frames(over, PacketType.ONE_RTT)
    assert code_of(info) == FEE
    # Configurable, and checked before the ranges are read (a huge count costs nothing).
    with pytest.raises(TransportError):
        F.parse_frames(_ack_wire(100, 0, [(0, 0)] * 4), PacketType.ONE_RTT, max_ack_ranges=4)
    F.parse_frames(_ack_wire(100, 0, [(0, 0)] * 3), PacketType.ONE_RTT, max_ack_ranges=4)
    with pytest.raises(TransportError):
        F.parse_frames(bytes.fromhex("020a00c0ffffffffffffff00"), PacketType.ONE_RTT)


def test_ack_encoding_misuse():
    for ranges in [(), ((5, 5),), ((10, 20), (5, 10)), ((10, 20), (15, 30))]:
        with pytest.raises(UsageError):
            F.encode_frame(F.Ack(ranges))


@pytest.mark.parametrize(
    "wire",
    [
        "0f" + "00" + "ffffffffffffffff" + "01" + "aa",  # offset + length = 2^62 (§19.8)
        "0c" + "00" + "ffffffffffffffff" + "aa",  # no length: runs to the end
        "06" + "ffffffffffffffff" + "01" + "aa",  # CRYPTO (§19.6)
        "07" + "00",  # empty NEW_TOKEN (§19.7)
        "12" + "d000000000000001",  # MAX_STREAMS above 2^60 (§19.11)
        "17" + "d000000000000001",  # STREAMS_BLOCKED above 2^60 (§19.14)
        "18" + "01" + "00" + "00" + "10" * 16,  # zero-length CID (§19.15)
        "18" + "01" + "00" + "15" + "aa" * 21 + "10" * 16,  # 21-byte CID
        "18" + "01" + "02" + "04" + "aa" * 4 + "10" * 16,  # retire_prior_to > sequence (§19.15)
        "18" + "01" + "00" + "04" + "aa" * 4 + "10" * 15,  # short reset token
        "1a" + "00" * 7,  # PATH_CHALLENGE of 7 bytes
        "1c" + "00" + "00" + "05" + "abcd",  # reason runs past the end
        "31" + "05" + "abcd",
    ],
)
def test_field_checks(wire):
    with pytest.raises(TransportError) as info:
        F.parse_frames(bytes.fromhex(wire), PacketType.ONE_RTT)
    assert code_of(info) == FEE


def test_stream_at_the_offset_limit_is_fine():
    wire = bytes.fromhex("0e" + "00" + "fffffffffffffffe" + "01" + "aa")
    frame = F.parse_frames(wire, PacketType.ONE_RTT).frames[0]
    assert frame.offset + len(frame.data) == F.MAX_OFFSET


def test_encoder_misuse():
    for frame in [
        F.NewConnectionId(1, 0, b"", b"r" * 16),
        F.NewConnectionId(1, 2, b"c", b"r" * 16),
        F.NewConnectionId(1, 0, b"c", b"r" * 15),
        F.PathChallenge(b"short"),
        F.PathResponse(b"x" * 9),
        F.NewToken(b""),
        F.MaxStreams(True, (1 << 60) + 1),
        F.StreamsBlocked(False, (1 << 60) + 1),
        F.Stream(0, F.MAX_OFFSET, b"x"),
        F.Crypto(F.MAX_OFFSET, b"x"),
    ]:
        with pytest.raises(UsageError):
            F.encode_frame(frame)


def test_reason_phrase_is_decoded_leniently():
    wire = bytes.fromhex("1c" + "0a" + "00" + "02" + "ff61")
    close = F.parse_frames(wire, PacketType.INITIAL).frames[0]
    assert close.reason == "\ufffda" and not close.application


# --- PADDING ----------------------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2, 17, 1162, 5000])
def test_padding_run_is_one_frame(run):
    assert F.parse_frames(bytes(run), PacketType.INITIAL).frames == [F.Padding(run)]
    middle = b"\x01" + bytes(run) + b"\x01" + bytes(3)
    assert F.parse_frames(middle, PacketType.INITIAL).frames == [F.Ping(), F.Padding(run), F.Ping(), F.Padding(3)]


def test_padding_only_packet_is_in_flight_but_not_ack_eliciting():
    parsed = F.parse_frames(bytes(40), PacketType.HANDSHAKE)
    assert parsed.in_flight and not parsed.ack_eliciting


def test_memoryview_payload():
    wire = memoryview(encoded(0x0B) + encoded(0x06))
    frames = F.parse_frames(wire, PacketType.ONE_RTT).frames
    assert frames == [SAMPLES[0x0B][0], SAMPLES[0x06][0]]
    assert type(frames[0].data) is bytes


def test_builder_headers():
    header = F.stream_frame_header(4, 0, 3, True, with_length=True)
    assert F.parse_frame(header + b"abc")[0] == F.Stream(4, 0, b"abc", True)
    header = F.crypto_frame_header(10, 2)
    assert F.parse_frame(header + b"hi")[0] == F.Crypto(10, b"hi")


# --- property: random valid frames round-trip ---------------------------------------------------

VARINT = st.integers(min_value=0, max_value=(1 << 62) - 1)
SMALL = st.integers(min_value=0, max_value=1 << 20)


@st.composite
def ack_frames(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    start = draw(st.integers(min_value=0, max_value=1 << 40))
    ranges = []
    for _ in range(n):
        stop = start + draw(st.integers(min_value=1, max_value=1000))
        ranges.append((start, stop))
        start = stop + draw(st.integers(min_value=1, max_value=1000))
    ecn = draw(st.none() | st.tuples(VARINT, VARINT, VARINT))
    return F.Ack(tuple(reversed(ranges)), draw(VARINT), ecn)


FRAME_STRATEGY = st.one_of(
    st.integers(min_value=1, max_value=3000).map(F.Padding),
    st.just(F.Ping()),
    ack_frames(),
    st.builds(F.ResetStream, VARINT, VARINT, VARINT),
    st.builds(F.StopSending, VARINT, VARINT),
    st.builds(F.Crypto, SMALL, st.binary(max_size=64)),
    st.builds(F.NewToken, st.binary(min_size=1, max_size=64)),
    st.builds(F.Stream, VARINT, SMALL, st.binary(max_size=64), st.booleans()),
    st.builds(F.MaxData, VARINT),
    st.builds(F.MaxStreamData, VARINT, VARINT),
    st.builds(F.MaxStreams, st.booleans(), st.integers(min_value=0, max_value=1 << 60)),
    st.builds(F.DataBlocked, VARINT),
    st.builds(F.StreamDataBlocked, VARINT, VARINT),
    st.builds(F.StreamsBlocked, st.booleans(), st.integers(min_value=0, max_value=1 << 60)),
    st.tuples(VARINT, st.binary(min_size=1, max_size=20), st.binary(min_size=16, max_size=16)).flatmap(
        lambda t: st.integers(min_value=0, max_value=t[0]).map(lambda r: F.NewConnectionId(t[0], r, t[1], t[2]))
    ),
    st.builds(F.RetireConnectionId, VARINT),
    st.builds(F.PathChallenge, st.binary(min_size=8, max_size=8)),
    st.builds(F.PathResponse, st.binary(min_size=8, max_size=8)),
    st.builds(F.ConnectionClose, VARINT, VARINT, st.text(max_size=30), st.just(False)),
    st.builds(F.ConnectionClose, VARINT, st.just(0), st.text(max_size=30), st.just(True)),
    st.just(F.HandshakeDone()),
    st.builds(F.Datagram, st.binary(max_size=64), st.just(True)),
)


@given(st.lists(FRAME_STRATEGY, min_size=1, max_size=8))
def test_random_frames_round_trip(frames):
    # Adjacent PADDING frames merge into one run on the wire.
    merged = []
    for frame in frames:
        if merged and type(frame) is F.Padding and type(merged[-1]) is F.Padding:
            merged[-1] = F.Padding(merged[-1].length + frame.length)
        else:
            merged.append(frame)
    payload = b"".join(F.encode_frame(f) for f in merged)
    assert F.parse_frames(payload, PacketType.ONE_RTT).frames == merged


def test_ack_frames_interoperate_with_aioquic():
    from aioquic.buffer import Buffer
    from aioquic.quic import packet as aio
    from aioquic.quic.rangeset import RangeSet as AioRangeSet

    ranges = AioRangeSet()
    for start, stop in [(0, 3), (5, 6), (10, 200), (1000, 1001)]:
        ranges.add(start, stop)
    buf = Buffer(capacity=200)
    buf.push_uint_var(0x02)
    aio.push_ack_frame(buf, ranges, 77, 190)
    ours = F.parse_frames(buf.data, PacketType.ONE_RTT).frames[0]
    assert ours == F.Ack(((1000, 1001), (10, 200), (5, 6), (0, 3)), 77)
    theirs, delay = aio.pull_ack_frame(Buffer(data=F.encode_frame(ours)[1:]))
    assert [(r.start, r.stop) for r in theirs] == [(0, 3), (5, 6), (10, 200), (1000, 1001)] and delay == 77


@given(st.integers(0, 1 << 62 - 1), st.integers(0, 1 << 40), st.integers(0, 0x5000), st.booleans())
def test_the_builders_bulk_stream_header_is_the_encoders(stream_id, offset, length, fin):
    # packet_builder._stream_header packs the bulk case in one struct call; any case is stream_frame_header's.
    from pyquic.packet_builder import _stream_header

    assert _stream_header(stream_id, offset, length, fin) == F.stream_frame_header(stream_id, offset, length, fin)
    bulk = (stream_id % 0x40, 0x4000 + offset % (0x40000000 - 0x4000), 0x40 + length % (0x4000 - 0x40))
    assert _stream_header(*bulk, fin) == F.stream_frame_header(*bulk, fin)
