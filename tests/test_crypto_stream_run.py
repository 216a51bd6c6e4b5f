# PacketProtection.protect_stream_run, the bulk sender's one call for a run
# of STREAM-only 1-RTT packets, in C (pyquic._crypto) and in its twin
# (pyquic._crypto_py): byte-for-byte the packets protect_batch makes from
# the builder's own frame encoding (pyquic.frames.stream_frame_header), the
# two implementations equal (errors included), every packet opening back to
# the frame it was given, and bad arguments refused with CryptoError or
# TypeError.  Also run against an AddressSanitizer build (scripts/asan.sh).
import importlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyquic.frames import Stream, parse_frames, stream_frame_header
from pyquic.packet import PacketType

C = importlib.import_module("pyquic._crypto")
PY = importlib.import_module("pyquic._crypto_py")
PN_LIMIT = 1 << 62
KEYS = {0x1301: 16, 0x1302: 32, 0x1303: 32}
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pair(suite: int = 0x1301):
    n = KEYS[suite]
    key, iv, hp = bytes(range(1, n + 1)), bytes(range(12)), bytes(range(100, 100 + n))
    return C.PacketProtection(suite, key, iv, hp), PY.PacketProtection(suite, key, iv, hp)


def expected(pp, header_start: bytes, pn: int, frames, room: int, pad_below: int):
    """What the builder's per-packet path makes of the same frames."""
    pn_len = (header_start[0] & 3) + 1
    packets, sizes = [], []
    for i, (sid, off, data, fin) in enumerate(frames):
        payload = stream_frame_header(sid, off, len(data), fin) + bytes(data)
        short = room - len(payload)
        if 0 < short < pad_below:
            payload += bytes(short)
        if len(payload) < 4 - pn_len:
            payload += bytes(4 - pn_len - len(payload))
        header = header_start + ((pn + i) % (1 << (8 * pn_len))).to_bytes(pn_len, "big")
        packets.append((header, payload, pn + i))
        sizes.append(len(header) + len(payload) + 16)
    return pp.protect_batch(packets), tuple(sizes)


@st.composite
def runs(draw):
    pn_len = draw(st.integers(1, 4))
    header_start = bytes([0x40 | draw(st.integers(0, 7)) << 2 | (pn_len - 1)]) + draw(st.binary(max_size=20))
    pn = draw(st.one_of(st.integers(0, 300), st.integers(0, PN_LIMIT - 64)))
    room = draw(st.integers(20, 1500))
    frames = []
    for _ in range(draw(st.integers(0, 6))):
        sid = draw(st.one_of(st.integers(0, 70), st.integers(0, PN_LIMIT - 1)))
        off = draw(st.one_of(st.just(0), st.integers(0, 1 << 20), st.integers(0, PN_LIMIT - 2000)))
        head = len(stream_frame_header(sid, off, room, True))
        size = draw(st.integers(0, max(0, room - head)))
        frames.append(Stream(sid, off, draw(st.binary(min_size=size, max_size=size)), draw(st.booleans())))
    return header_start, pn, frames, room, draw(st.sampled_from([0, 1, 32, 2000]))


@SETTINGS
@given(suite=st.sampled_from(sorted(KEYS)), run=runs())
@example(suite=0x1301, run=(b"\x43" + bytes(8), 0, [Stream(0, 0, b"", True)], 100, 32))  # the sample padding
@example(suite=0x1301, run=(b"\x41" + bytes(8), 5, [Stream(4, 20000, bytes(1380), False)] * 3, 1400, 32))
def test_equals_protect_batch_of_the_builders_frames_in_both_implementations(suite, run):
    c, py = pair(suite)
    want = expected(c, *run)
    assert c.protect_stream_run(*run) == want
    assert py.protect_stream_run(*run) == want


@SETTINGS
@given(run=runs())
def test_every_packet_opens_to_its_frame(run):
    header_start, pn, frames, room, pad_below = run
    c, _ = pair()
    buffer, sizes = c.protect_stream_run(header_start, pn, frames, room, pad_below)
    assert len(buffer) == sum(sizes)
    at = 0
    for i, (frame, size) in enumerate(zip(frames, sizes)):
        header, payload, got_pn = c.unprotect(buffer[at : at + size], len(header_start), pn + i - 1)
        assert got_pn == pn + i and header[: len(header_start)] == header_start
        parsed = parse_frames(payload, PacketType.ONE_RTT).frames
        assert tuple(parsed[0]) == (frame.stream_id, frame.offset, frame.data, frame.fin), (parsed[0], frame)
        at += size


CRYPTO_ERROR = "CryptoError"  # each implementation's own class


def _both_raise(run, kind):
    for mod, pp in zip((C, PY), pair()):
        with pytest.raises(mod.CryptoError if kind is CRYPTO_ERROR else kind):
            pp.protect_stream_run(*run)


def test_a_frame_longer_than_the_room_is_refused():
    _both_raise((b"\x40\x01", 0, [Stream(0, 0, bytes(100), False)], 100, 0), CRYPTO_ERROR)
    c, py = pair()
    one_over = (b"\x40\x01", 0, [Stream(0, 0, bytes(97), False)], 100, 0)  # type, ID, a 2-byte length: 101
    _both_raise(one_over, CRYPTO_ERROR)
    exact = (b"\x40\x01", 0, [Stream(0, 0, bytes(96), False)], 100, 0)
    assert c.protect_stream_run(*exact) == py.protect_stream_run(*exact)
    assert c.protect_stream_run(*exact)[1] == (2 + 1 + 100 + 16,)


@pytest.mark.parametrize("run, kind", [
    ((b"", 0, [], 100, 0), CRYPTO_ERROR),  # no first byte
    ((bytes(65), 0, [], 100, 0), CRYPTO_ERROR),  # longer than a first byte and a 20-byte ID... and then some
    ((b"\x40", PN_LIMIT, [], 100, 0), CRYPTO_ERROR),
    ((b"\x40", PN_LIMIT - 1, [Stream(0, 0, b"x", False)] * 2, 100, 0), CRYPTO_ERROR),  # the second reaches 2^62
    ((b"\x40", 0, [Stream(-1, 0, b"x", False)], 100, 0), CRYPTO_ERROR),
    ((b"\x40", 0, [Stream(0, PN_LIMIT - 1, b"x", False)], 100, 0), CRYPTO_ERROR),  # offset + length past 2^62 - 1
    ((b"\x40", 0, [Stream(0, 0, b"x", False)], -1, 0), CRYPTO_ERROR),
    ((b"\x40", 0, [Stream(0, 0, b"x", False)], 100, -1), CRYPTO_ERROR),
    ((b"\x40", 0, [(0, 0, b"x")], 100, 0), TypeError),  # three items, not four
    ((b"\x40", 0, [[0, 0, b"x", False]], 100, 0), TypeError),  # a list, not a tuple
    ((b"\x40", 0, [Stream(0, 0, "text", False)], 100, 0), TypeError),  # not a buffer
    ((b"\x40", 0, [Stream("0", 0, b"x", False)], 100, 0), TypeError),
    ((b"\x40", 0, 5, 100, 0), TypeError),
])
def test_bad_arguments_raise_the_same_in_both(run, kind):
    _both_raise(run, kind)


def test_memoryview_slices_and_bytearrays_are_data_too():
    c, py = pair(0x1303)
    backing = bytearray(range(256)) * 20
    view = memoryview(backing)
    frames = [Stream(8, 1000, view[0:1000], False), Stream(8, 2000, backing[1000:2000], False),
              Stream(8, 3000, view[2000:2500], True)]
    run = (b"\x42" + bytes(8), 77, frames, 1100, 32)
    assert c.protect_stream_run(*run) == py.protect_stream_run(*run) == expected(c, *run)
