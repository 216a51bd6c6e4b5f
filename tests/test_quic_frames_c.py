# pyquic._frames (the C parser of the common frames) against its pure-Python
# twin, frames.parse_frames_py: whenever C returns a result it is the twin's
# result, to the type of every field; whenever the twin raises, C declines
# (None); payloads made only of the common frames, well formed, are taken by
# C.  Checked over every frame sample, generated frames, mutations of both
# (truncated, flipped, inserted bytes), random bytes, and every
# (packet type, sender) legality table.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pyquic import frames as F
from pyquic.buffer import encode_varint_sized
from pyquic.errors import TransportError
from pyquic.packet import PacketType


def _samples() -> dict:
    # test_quic_frames.py's one frame of every wire type, loaded by path: scripts/asan.sh
    # runs this file with only the ASan build on sys.path (no `tests` package).
    spec = importlib.util.spec_from_file_location("_frame_samples", Path(__file__).with_name("test_quic_frames.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SAMPLES


SAMPLES = _samples()

COMMON_TYPES = {0x00, 0x01, 0x02, 0x03, 0x06, *range(0x08, 0x10), 0x10, 0x11, 0x12, 0x13, 0x1E}
VARINT_MAX = (1 << 62) - 1


def _twin(payload: bytes, key, max_ranges: int):
    packet_type, from_server = key
    try:
        return F.parse_frames_py(payload, packet_type, from_server=from_server, max_ack_ranges=max_ranges)
    except TransportError:
        return None


def _same(c, py) -> bool:
    """Equal, and of the same types all the way down (True is not 1 here)."""
    return (
        type(c) is type(py) is F.ParsedPayload
        and repr(c) == repr(py)
        and [type(f) for f in c.frames] == [type(f) for f in py.frames]
        and all(type(a) is type(b) for f, g in zip(c.frames, py.frames) for a, b in zip(f, g))
    )


def check(payload: bytes, max_ranges: int = F.MAX_ACK_RANGES) -> int:
    """C against the twin under every legality table; how many tables C took."""
    taken = 0
    for key, allowed in F._ALLOWED_BYTES.items():
        c = F._c_parse(payload, allowed, max_ranges)
        if c is None:
            continue
        py = _twin(payload, key, max_ranges)
        assert py is not None, f"C parsed what the twin refuses: {payload.hex()} {key}"
        assert _same(c, py), f"{payload.hex()} {key}:\n C  {c!r}\n py {py!r}"
        taken += 1
    return taken


def encode(frames, last_open: bool = False) -> bytes:
    out = bytearray()
    for i, frame in enumerate(frames):
        if isinstance(frame, F.Stream):
            frame.encode(out, last=last_open and i == len(frames) - 1)
        else:
            frame.encode(out)
    return bytes(out)


def test_the_extension_is_built_and_used():
    # CI builds it (scripts/setup.sh checks); without it parse_frames is the twin alone.
    assert F._c_parse is not None
    expected = os.environ.get("PYQUIC_EXPECT_CRYPTO_FROM")  # scripts/asan.sh: the ASan build, not the normal one
    if expected:
        module = importlib.import_module("pyquic._frames")
        assert Path(module.__file__).resolve().is_relative_to(Path(expected).resolve()), module.__file__
    payload = encode([F.Stream(4, 0, b"data", True)])
    assert F.parse_frames(payload, PacketType.ONE_RTT, from_server=True) == F.parse_frames_py(
        payload, PacketType.ONE_RTT, from_server=True)


def test_the_twin_alone_when_asked():
    code = "from pyquic import frames; print(frames._c_parse is None)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYQUIC_FRAMES": "python"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_every_sample_alone_and_after_each_other_sample():
    for t, (frame, last) in SAMPLES.items():
        alone = encode([frame], last_open=last)
        taken = check(alone)
        assert (taken > 0) == (t in COMMON_TYPES), hex(t)
        for u, (other, _) in SAMPLES.items():
            check(encode([other]) + alone)


def test_every_truncation_of_every_sample():
    for frame, last in SAMPLES.values():
        payload = encode([frame, F.Ping()], last_open=False)
        for cut in range(len(payload)):
            check(payload[:cut])


def test_ack_range_limits_and_edges():
    ack = F.Ack(((100, 105), (90, 98), (50, 60), (0, 1)), delay=3)
    payload = encode([ack])
    for max_ranges in range(1, 6):
        taken = check(payload, max_ranges)
        assert (taken > 0) == (max_ranges > 3)
    # A first range reaching packet 0 exactly, and one reaching below it.
    check(bytes([0x02, 5, 0, 0, 5]))
    check(bytes([0x02, 5, 0, 0, 6]))
    # A gap or a range below packet number 0 (§19.3.1).
    check(bytes([0x02, 10, 0, 1, 2, 6, 0]))
    check(bytes([0x02, 10, 0, 1, 2, 5, 0]))
    check(bytes([0x02, 10, 0, 1, 2, 0, 6]))
    check(bytes([0x02, 10, 0, 1, 2, 0, 5]))
    # A range count larger than the bytes left could hold.
    check(bytes([0x02, 10, 0, 0x3F, 0]) + bytes(20))


def test_long_varints_and_limits():
    v = encode_varint_sized
    payloads = [
        b"\x08" + v(4, 8) + b"abc",  # a stream ID in 8 bytes, data to the end
        b"\x0e" + v(4, 2) + v(1, 8) + v(3, 4) + b"abcdef",
        b"\x0c" + v(0, 1) + v(VARINT_MAX, 8) + b"x",  # offset + length beyond 2^62 - 1
        b"\x0c" + v(0, 1) + v(VARINT_MAX - 1, 8) + b"x",
        b"\x0c" + v(0, 1) + v(VARINT_MAX, 8),  # empty data at the largest offset
        b"\x06" + v(VARINT_MAX - 2, 8) + v(2, 1) + b"ab",
        b"\x06" + v(VARINT_MAX - 2, 8) + v(3, 1) + b"abc",
        b"\x12" + v(1 << 60, 8), b"\x12" + v((1 << 60) + 1, 8), b"\x13" + v(0, 1),
        b"\x10" + v(VARINT_MAX, 8), b"\x11" + v(1, 4) + v(2, 2),
        b"\x00" * 40 + b"\x01" + b"\x00" * 3,  # PADDING runs around a PING
        b"\x1e", b"\x1e\x00\x00",
        b"\x40\x01",  # a one-byte type in two bytes: the twin's PROTOCOL_VIOLATION
        b"", b"\x3f", b"\x21\x00",
    ]
    for payload in payloads:
        check(payload)


def test_handshake_packets_go_to_c():
    # The handshake's own packets: CRYPTO, ACK and PADDING in Initial and Handshake packets.
    payload = encode([F.Ack(((0, 2),), delay=0), F.Crypto(0, b"\x16" * 500), F.Padding(600)])
    for ptype in (PacketType.INITIAL, PacketType.HANDSHAKE):
        c = F._c_parse(payload, F._ALLOWED_BYTES[ptype, True], F.MAX_ACK_RANGES)
        assert c is not None and _same(c, F.parse_frames_py(payload, ptype, from_server=True))
    # A STREAM frame is not allowed there: C declines and the twin raises.
    bad = encode([F.Stream(0, 0, b"x")])
    assert F._c_parse(bad, F._ALLOWED_BYTES[PacketType.HANDSHAKE, True], F.MAX_ACK_RANGES) is None


# --- generated ---------------------------------------------------------------------------

varints = st.integers(0, VARINT_MAX)
small = st.integers(0, 1 << 20)


@st.composite
def acks(draw):
    largest = draw(st.integers(0, VARINT_MAX - 1))
    ranges, top = [], largest + 1
    for _ in range(draw(st.integers(1, 6))):
        if top <= 0:
            break
        length = draw(st.integers(1, min(top, 1000)))
        ranges.append((top - length, top))
        top = top - length - draw(st.integers(1, 1000))
    ecn = draw(st.none() | st.tuples(varints, varints, varints))
    return F.Ack(tuple(ranges), delay=draw(varints), ecn=ecn)


common_frames = st.one_of(
    st.builds(F.Padding, st.integers(1, 50)),
    st.just(F.Ping()),
    acks(),
    st.builds(F.Crypto, small, st.binary(max_size=64)),
    st.builds(F.Stream, varints, small, st.binary(max_size=64), st.booleans()),
    st.builds(F.MaxData, varints),
    st.builds(F.MaxStreamData, varints, varints),
    st.builds(F.MaxStreams, st.booleans(), st.integers(0, 1 << 60)),
    st.just(F.HandshakeDone()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(common_frames, min_size=1, max_size=6), st.booleans())
def test_generated_common_frames_are_taken_by_c_and_equal(frames, last_open):
    payload = encode(frames, last_open=last_open and isinstance(frames[-1], F.Stream))
    check(payload)
    # A 1-RTT packet may carry all of them (HANDSHAKE_DONE only from a server).
    c = F._c_parse(payload, F._ALLOWED_BYTES[PacketType.ONE_RTT, True], F.MAX_ACK_RANGES)
    assert c is not None


@settings(max_examples=400, deadline=None)
@given(st.lists(common_frames, min_size=1, max_size=4), st.data())
def test_mutated_payloads_never_differ(frames, data):
    payload = bytearray(encode(frames))
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["flip", "insert", "cut"]))
        pos = data.draw(st.integers(0, max(0, len(payload) - 1)))
        if kind == "flip" and payload:
            payload[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            payload[pos:pos] = bytes([data.draw(st.integers(0, 255))])
        else:
            del payload[pos:]
    check(bytes(payload), data.draw(st.integers(1, F.MAX_ACK_RANGES)))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_never_differ(payload):
    check(payload)
