# Property tests for packet protection (pyquic._crypto in C and its twin
# pyquic._crypto_py): round trips, tamper detection, robustness to garbage,
# C/Python byte-for-byte parity, batch/into/in-place equivalences, argument
# validation and thread safety of the GIL-releasing batch calls.
#
# Exception policy under test (both implementations): a bad length, offset,
# range or unusable buffer raises CryptoError; a wrong Python type (not a
# buffer, not an int, a batch item that is not a 3-tuple) raises TypeError.
#
# $PYQUIC_HYPOTHESIS_PROFILE: quick (25 examples), default (200), thorough (2000).
import importlib
import os
import sys
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

IMPL_NAMES = {"c": "pyquic._crypto", "python": "pyquic._crypto_py"}


def _import(name):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import problem is a failure, never a skip
        pytest.fail(f"cannot import {name}: {exc!r}")


@pytest.fixture(params=sorted(IMPL_NAMES), scope="module")
def impl(request):
    return _import(IMPL_NAMES[request.param])


@pytest.fixture(scope="module")
def both():
    return _import(IMPL_NAMES["c"]), _import(IMPL_NAMES["python"])


EXAMPLES = {"quick": 25, "default": 200, "thorough": 2000}[os.environ.get("PYQUIC_HYPOTHESIS_PROFILE", "default")]
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # ASan builds are slow
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SUITES = [0x1301, 0x1302, 0x1303]
KEY_LENGTH = {0x1301: 16, 0x1302: 32, 0x1303: 32}
PN_LIMIT = 1 << 62


# ------------------------------------------------------------- strategies


@st.composite
def keys(draw, suite=None):
    suite = draw(st.sampled_from(SUITES)) if suite is None else suite
    n = KEY_LENGTH[suite]
    return suite, draw(st.binary(min_size=n, max_size=n)), draw(st.binary(min_size=12, max_size=12)), draw(
        st.binary(min_size=n, max_size=n)
    )


@st.composite
def plain_packets(draw, max_payload=1500):
    """(header, payload, packet number, pn_offset, largest_pn) that decode back to the number."""
    pn_len = draw(st.integers(1, 4))
    pn = draw(st.integers(0, PN_LIMIT - 1))
    if draw(st.booleans()):  # long header: form, fixed bit, type, reserved
        first = 0xC0 | draw(st.integers(0, 15)) << 2
    else:  # short header: fixed bit, spin, reserved, key phase
        first = 0x40 | draw(st.integers(0, 7)) << 2
    first |= pn_len - 1
    middle = draw(st.binary(max_size=40))
    truncated = pn % (1 << (8 * pn_len))
    header = bytes([first]) + middle + truncated.to_bytes(pn_len, "big")
    payload = draw(st.binary(min_size=4 - pn_len, max_size=max_payload))
    # Any largest_pn within half a window below the packet number decodes it (RFC 9000 A.3).
    hwin = 1 << (8 * pn_len - 1)
    largest = draw(st.integers(max(-1, pn - hwin), pn - 1)) if pn > 0 else -1
    return header, payload, pn, 1 + len(middle), largest


def make_pp(mod, k):
    return mod.PacketProtection(*k)


# ----------------------------------------------------------- round trips


@SETTINGS
@given(k=keys(), pn=st.integers(0, PN_LIMIT - 1), aad=st.binary(max_size=64), data=st.binary(max_size=1500))
def test_seal_open_round_trip(impl, k, pn, aad, data):
    aead = impl.AEAD(k[0], k[1], k[2])
    sealed = aead.seal(pn, aad, data)
    assert len(sealed) == len(data) + 16
    assert aead.open(pn, aad, sealed) == data
    assert aead.open(pn, bytearray(aad), memoryview(sealed)) == data


@SETTINGS
@given(k=keys(), p=plain_packets())
def test_protect_unprotect_round_trip(impl, k, p):
    header, payload, pn, pn_offset, largest = p
    pp = make_pp(impl, k)
    packet = pp.protect(header, payload, pn)
    assert len(packet) == len(header) + len(payload) + 16
    keep = 0xF0 if header[0] & 0x80 else 0xE0  # §5.4.1: only the low 4 (long) or 5 (short) bits are masked
    assert packet[0] & keep == header[0] & keep
    assert pp.unprotect(packet, pn_offset, largest) == (header, payload, pn)
    hp = impl.HeaderProtection(k[0], k[3])
    assert hp.remove(packet, pn_offset) == (header, pn % (1 << (8 * len(header) - 8 * pn_offset)))


# ------------------------------------------------------- tamper detection


@SETTINGS
@given(k=keys(), p=plain_packets(max_payload=200), data=st.data())
def test_any_flipped_bit_fails(impl, k, p, data):
    # A flip in the header changes the AAD (or, in masked bits, the unmasked
    # header and packet number); a flip in the sample changes the mask; a flip
    # anywhere in the payload or tag breaks the tag.  All must fail.
    header, payload, pn, pn_offset, largest = p
    pp = make_pp(impl, k)
    packet = bytearray(pp.protect(header, payload, pn))
    bit = data.draw(st.integers(0, 8 * len(packet) - 1))
    packet[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(impl.CryptoError):
        pp.unprotect(bytes(packet), pn_offset, largest)


def test_decode_packet_number_edges(impl):
    d = impl.decode_packet_number
    assert d(0, 1, -1) == 0 and d(255, 1, -1) == 255 and d(0xFFFF, 2, -1) == 0xFFFF
    assert d(0, 1, 127) == 256 and d(0, 1, 128) == 256 and d(200, 1, 300) == 200
    # Packet numbers stop at 2^62 - 1 (RFC 9000 §12.3): never decode past it.
    assert d(0, 1, PN_LIMIT - 1) == PN_LIMIT - 256
    assert d(0xFF, 1, PN_LIMIT - 1) == PN_LIMIT - 1
    assert d(0, 4, PN_LIMIT - 2) == PN_LIMIT - 2**32
    assert d(0xFFFFFFFF, 4, 0) == 0xFFFFFFFF  # nothing below 0 either
    assert d(truncated=1, pn_length=1, largest_pn=0) == 1


def test_every_bit_of_one_packet_fails(impl):
    header, payload = bytes.fromhex("41aabbccdd00000007"), b"\x01" * 30
    for suite in SUITES:
        k = (suite, bytes(range(KEY_LENGTH[suite])), bytes(12), bytes(KEY_LENGTH[suite]))
        pp = make_pp(impl, k)
        packet = pp.protect(header, payload, 7)
        for bit in range(8 * len(packet)):
            bad = bytearray(packet)
            bad[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(impl.CryptoError):
                pp.unprotect(bad, 5, 6)


@SETTINGS
@given(k=keys(), p=plain_packets(max_payload=200), wrong=st.binary(min_size=32, max_size=32))
def test_wrong_keys_fail(impl, k, p, wrong):
    header, payload, pn, pn_offset, largest = p
    packet = make_pp(impl, k).protect(header, payload, pn)
    other = (k[0], wrong[: KEY_LENGTH[k[0]]], k[2], k[3])
    if other != k:
        with pytest.raises(impl.CryptoError):
            make_pp(impl, other).unprotect(packet, pn_offset, largest)


# -------------------------------------------------------------- garbage


@SETTINGS
@given(
    k=keys(),
    blob=st.binary(max_size=120),
    pn_offset=st.integers(-3, 130),
    largest=st.integers(-1, PN_LIMIT - 1),
)
def test_garbage_raises_only_crypto_error(impl, k, blob, pn_offset, largest):
    pp = make_pp(impl, k)
    hp = impl.HeaderProtection(k[0], k[3])
    aead = impl.AEAD(k[0], k[1], k[2])
    with pytest.raises(impl.CryptoError):
        pp.unprotect(blob, pn_offset, largest)
    with pytest.raises(impl.CryptoError):
        aead.open(largest if largest >= 0 else 0, b"", blob)
    try:
        header, truncated = hp.remove(blob, pn_offset)
    except impl.CryptoError:
        assert not 1 <= pn_offset <= len(blob) - 20
    else:
        assert len(header) in range(pn_offset + 1, pn_offset + 5)
        assert header[1:pn_offset] == blob[1:pn_offset]
        assert truncated < 1 << (8 * (len(header) - pn_offset))
    results = pp.unprotect_batch(blob, [(0, len(blob), max(pn_offset, 1))], largest)
    assert results == [None]


@SETTINGS
@given(k=keys(), p=plain_packets(max_payload=100), data=st.data())
def test_truncations_fail(impl, k, p, data):
    header, payload, pn, pn_offset, largest = p
    pp = make_pp(impl, k)
    packet = pp.protect(header, payload, pn)
    cut = data.draw(st.integers(0, len(packet) - 1))
    with pytest.raises(impl.CryptoError):
        pp.unprotect(packet[:cut], pn_offset, largest)
    with pytest.raises(impl.CryptoError):
        pp.unprotect(packet[cut:], pn_offset, largest) if cut else pp.unprotect(packet + b"\0", pn_offset, largest)
    aead = impl.AEAD(k[0], k[1], k[2])
    sealed = aead.seal(pn, header, payload)
    with pytest.raises(impl.CryptoError):
        aead.open(pn, header, sealed[: data.draw(st.integers(0, len(sealed) - 1))])


# --------------------------------------------------------------- parity


@SETTINGS
@given(k=keys(), p=plain_packets(), sample=st.binary(min_size=16, max_size=16))
def test_c_and_python_agree(both, k, p, sample):
    c, py = both
    header, payload, pn, pn_offset, largest = p
    packet = make_pp(c, k).protect(header, payload, pn)
    assert make_pp(py, k).protect(header, payload, pn) == packet
    assert make_pp(py, k).unprotect(packet, pn_offset, largest) == make_pp(c, k).unprotect(packet, pn_offset, largest)
    assert c.HeaderProtection(k[0], k[3]).mask(sample) == py.HeaderProtection(k[0], k[3]).mask(sample)
    plain = header + payload + bytes(16)
    assert c.HeaderProtection(k[0], k[3]).apply(plain, pn_offset) == py.HeaderProtection(k[0], k[3]).apply(
        plain, pn_offset
    )
    assert c.AEAD(*k[:3]).seal(pn, header, payload) == py.AEAD(*k[:3]).seal(pn, header, payload)


@SETTINGS
@given(truncated=st.integers(0, 2**32 - 1), pn_length=st.integers(1, 4), largest=st.integers(-1, PN_LIMIT - 1))
@example(truncated=0, pn_length=1, largest=PN_LIMIT - 1)  # the pseudocode alone gives 2^62 here
def test_decode_packet_number_parity_and_properties(both, truncated, pn_length, largest):
    c, py = both
    truncated %= 1 << (8 * pn_length)
    got = c.decode_packet_number(truncated, pn_length, largest)
    assert got == py.decode_packet_number(truncated, pn_length, largest)
    win = 1 << (8 * pn_length)
    assert 0 <= got < PN_LIMIT and got % win == truncated
    # RFC 9000 A.3: the closest candidate to largest + 1, unless that leaves [0, 2^62).
    expected = largest + 1
    for other in (got - win, got + win):
        if 0 <= other < PN_LIMIT:
            assert abs(got - expected) <= abs(other - expected)


# Arguments of every kind, right and wrong: both implementations must return
# the same thing or raise the same exception type.
ARG = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 1, 4, 16, 20, 0x1301, 0x1303, 2**62 - 1, 2**62, -1]),
    st.binary(max_size=48),
    st.binary(max_size=48).map(bytearray),
    st.none(),
    st.text(max_size=4),
    st.floats(allow_nan=False, max_value=10, min_value=-10),
)


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the type is what we compare
        # CryptoError messages are ours and must match; TypeError texts come from Python.
        return ("raised", type(exc).__name__, str(exc) if type(exc).__name__ == "CryptoError" else "")


METHODS = ["protect", "unprotect", "seal", "open", "mask", "apply", "remove", "decode", "new_aead", "new_pp"]
METHODS += ["protect_into", "seal_into", "protect_batch", "unprotect_batch"]
K0 = (0x1301, bytes(16), bytes(12), bytes(16))


@SETTINGS
@given(k=keys(), args=st.lists(ARG, min_size=3, max_size=3), method=st.sampled_from(METHODS))
@example(k=K0, args=[b"", b"", 0], method="protect")
@example(k=K0, args=[b"\x43\x00", b"", 0], method="protect")
@example(k=K0, args=[b"\x40\x00", b"", 0], method="protect")
@example(k=K0, args=[bytes(20), 1, -1], method="unprotect")
@example(k=K0, args=[bytes(15), 0, 0], method="mask")
@example(k=K0, args=[0x1304, bytes(16), bytes(12)], method="new_aead")
@example(k=K0, args=[0x1302, bytes(16), bytes(12)], method="new_pp")
@example(k=K0, args=[bytearray(40), 30, b"\x40\x00"], method="protect_into")
@example(k=K0, args=[bytes(40), 0, b"\x40\x00"], method="protect_into")
@example(k=K0, args=[bytearray(40), 0, bytes(30)], method="seal_into")
@example(k=K0, args=[bytes(40), 30, 10], method="unprotect_batch")
def test_argument_handling_parity(both, k, args, method):
    def call(mod):
        if method == "decode":
            return mod.decode_packet_number(*args)
        if method == "new_aead":
            return mod.AEAD(*args).cipher_suite
        if method == "new_pp":
            return mod.PacketProtection(args[0], args[1], args[2], args[1]).cipher_suite
        if method == "protect_into":
            return make_pp(mod, k).protect_into(args[0], args[1], args[2], bytes(4), 0)
        if method == "seal_into":
            return mod.AEAD(*k[:3]).seal_into(args[0], args[1], 0, b"", args[2])
        if method == "protect_batch":
            return make_pp(mod, k).protect_batch([tuple(args)])
        if method == "unprotect_batch":
            return make_pp(mod, k).unprotect_batch(args[0], [(args[1], args[2], 1)], -1)
        if method in ("protect", "unprotect"):
            return getattr(make_pp(mod, k), method)(*args)
        if method in ("seal", "open"):
            return getattr(mod.AEAD(*k[:3]), method)(*args)
        return getattr(mod.HeaderProtection(k[0], k[3]), method)(*args[: 1 if method == "mask" else 2])

    assert outcome(lambda: call(both[0])) == outcome(lambda: call(both[1]))


# -------------------------------------------------- batch, into, in place


@SETTINGS
@given(k=keys(), packets=st.lists(plain_packets(max_payload=300), max_size=8))
def test_protect_batch_equals_singles(impl, k, packets):
    pp = make_pp(impl, k)
    batch = [(h, p, n) for h, p, n, _, _ in packets]
    assert pp.protect_batch(batch) == b"".join(pp.protect(*b) for b in batch)
    assert pp.protect_batch(iter(batch)) == pp.protect_batch(tuple(batch))


@SETTINGS
@given(k=keys(), packets=st.lists(plain_packets(max_payload=300), min_size=1, max_size=8), data=st.data())
def test_unprotect_batch_equals_singles(impl, k, packets, data):
    pp = make_pp(impl, k)
    buffer = bytearray(data.draw(st.binary(max_size=8)))
    segments = []
    for header, payload, pn, pn_offset, _ in packets:
        packet = bytearray(pp.protect(header, payload, pn))
        if data.draw(st.booleans()):  # corrupt some packets
            i = data.draw(st.integers(0, len(packet) - 1))
            packet[i] ^= 1 << data.draw(st.integers(0, 7))
        segments.append((len(buffer), len(packet), pn_offset))
        buffer += packet + data.draw(st.binary(max_size=4))
    largest = data.draw(st.integers(-1, 1000))
    got = pp.unprotect_batch(buffer, segments, largest)
    expected = []
    for offset, length, pn_offset in segments:
        try:
            r = pp.unprotect(bytes(buffer[offset : offset + length]), pn_offset, largest)
        except impl.CryptoError:
            r = None
        else:
            largest = max(largest, r[2])  # largest_pn advances as packets open
        expected.append(r)
    assert got == expected


def test_unprotect_batch_none_among_good(impl):
    k = (0x1303, bytes(32), bytes(12), bytes(range(32)))
    pp = make_pp(impl, k)
    packets = [pp.protect(b"\x43" + bytes(8) + n.to_bytes(4, "big"), b"payload %d" % n, n) for n in range(5)]
    bad = bytearray(packets[2])
    bad[-1] ^= 1
    packets[2] = bytes(bad)
    buffer = b"".join(packets)
    segments, at = [], 0
    for p in packets:
        segments.append((at, len(p), 9))
        at += len(p)
    segments.append((at, 0, 1))  # empty: too short to sample -> None
    segments.append((0, 19, 1))  # too short to sample -> None
    segments.append((0, 30, 29))  # pn_offset beyond the sample -> None
    results = pp.unprotect_batch(memoryview(buffer), segments, -1)
    assert [r and r[2] for r in results] == [0, 1, None, 3, 4, None, None, None]
    assert results[4] == (b"\x43" + bytes(8) + (4).to_bytes(4, "big"), b"payload 4", 4)
    assert pp.unprotect_batch(buffer, [], 5) == []
    # After failures the context still opens good packets (no stale state).
    assert pp.unprotect(packets[3], 9, -1)[2] == 3


@SETTINGS
@given(k=keys(), p=plain_packets(max_payload=300), prefix=st.integers(0, 9), suffix=st.integers(0, 9))
def test_into_writes_exactly_the_same_bytes(impl, k, p, prefix, suffix):
    header, payload, pn, _, _ = p
    pp = make_pp(impl, k)
    expected = pp.protect(header, payload, pn)
    out = bytearray(b"\xa5" * (prefix + len(expected) + suffix))
    assert pp.protect_into(out, prefix, header, payload, pn) == len(expected)
    assert out == b"\xa5" * prefix + expected + b"\xa5" * suffix
    aead = impl.AEAD(*k[:3])
    sealed = aead.seal(pn, header, payload)
    out = bytearray(b"\x5a" * (prefix + len(sealed) + suffix))
    assert aead.seal_into(memoryview(out), prefix, pn, header, payload) == len(sealed)
    assert out == b"\x5a" * prefix + sealed + b"\x5a" * suffix


@SETTINGS
@given(k=keys(), p=plain_packets(max_payload=300), shift=st.integers(-20, 20))
def test_in_place_and_overlapping(impl, k, p, shift):
    """protect_into/seal_into read inputs that alias `out`: exactly in place, or shifted."""
    header, payload, pn, _, _ = p
    pp, aead = make_pp(impl, k), impl.AEAD(*k[:3])
    expected, sealed = pp.protect(header, payload, pn), aead.seal(pn, header, payload)
    base = 40
    buf = bytearray(base + len(expected) + 40)
    view = memoryview(buf)
    h_at, p_at = base + shift, base + len(header) + shift  # shift 0: exactly in place
    buf[h_at : h_at + len(header)] = header
    buf[p_at : p_at + len(payload)] = payload
    n = pp.protect_into(buf, base, view[h_at : h_at + len(header)], view[p_at : p_at + len(payload)], pn)
    assert bytes(buf[base : base + n]) == expected
    buf[p_at : p_at + len(payload)] = payload
    buf[h_at : h_at + len(header)] = header
    aad_view = view[h_at : h_at + len(header)]
    n = aead.seal_into(buf, base + len(header), pn, aad_view, view[p_at : p_at + len(payload)])
    assert bytes(buf[base + len(header) : base + len(header) + n]) == sealed


def test_buffer_kinds(impl):
    import array

    k = (0x1301, bytes(16), bytes(12), bytes(16))
    pp = make_pp(impl, k)
    header, payload = b"\x40\x00", bytes(range(40))
    expected = pp.protect(header, payload, 0)
    assert pp.protect(bytearray(header), memoryview(payload), 0) == expected
    words = array.array("I")
    words.frombytes(payload)
    assert pp.protect(header, words, 0) == expected  # flat bytes of any format
    assert pp.protect(header, memoryview(payload).cast("B", (5, 8)), 0) == expected  # C-contiguous 2-D
    assert pp.unprotect(bytearray(expected), 1, -1) == (header, payload, 0)
    with pytest.raises(impl.CryptoError):  # strided: not contiguous
        pp.protect(header, memoryview(payload)[::2], 0)
    assert pp.protect(header=header, payload=payload, packet_number=0) == expected  # keywords
    assert pp.unprotect(packet=expected, largest_pn=-1, pn_offset=1)[2] == 0


# ----------------------------------------------------- argument validation


def test_constants(impl):
    assert (impl.AES_128_GCM, impl.AES_256_GCM, impl.CHACHA20_POLY1305) == (0x1301, 0x1302, 0x1303)
    assert (impl.TAG_LENGTH, impl.SAMPLE_LENGTH, impl.IV_LENGTH) == (16, 16, 12)
    assert impl.IMPLEMENTATION == {"pyquic._crypto": "c", "pyquic._crypto_py": "python"}[impl.__name__]
    assert issubclass(impl.CryptoError, ValueError)
    for suite, conf, integ in [(0x1301, 2**23, 2**52), (0x1302, 2**23, 2**52), (0x1303, 2**62, 2**36)]:
        n = KEY_LENGTH[suite]
        for obj in (impl.AEAD(suite, bytes(n), bytes(12)), impl.PacketProtection(suite, bytes(n), bytes(12), bytes(n))):
            assert (obj.cipher_suite, obj.tag_length) == (suite, 16)
            assert (obj.confidentiality_limit, obj.integrity_limit) == (conf, integ)
        assert impl.HeaderProtection(suite, bytes(n)).cipher_suite == suite


def test_construction_validation(impl):
    E = impl.CryptoError
    for bad in [
        lambda: impl.AEAD(0x1304, bytes(16), bytes(12)),  # unsupported suite
        lambda: impl.AEAD(2**70, bytes(16), bytes(12)),
        lambda: impl.AEAD(0x1301, bytes(32), bytes(12)),  # key length per suite
        lambda: impl.AEAD(0x1302, bytes(16), bytes(12)),
        lambda: impl.AEAD(0x1303, bytes(16), bytes(12)),
        lambda: impl.AEAD(0x1301, bytes(16), bytes(8)),  # iv 12
        lambda: impl.HeaderProtection(0x1301, bytes(15)),
        lambda: impl.HeaderProtection(0, bytes(16)),
        lambda: impl.PacketProtection(0x1301, bytes(16), bytes(12), bytes(32)),
        lambda: impl.PacketProtection(0x1303, bytes(32), bytes(13), bytes(32)),
    ]:
        with pytest.raises(E):
            bad()
    for bad in [
        lambda: impl.AEAD("0x1301", bytes(16), bytes(12)),
        lambda: impl.AEAD(0x1301, "k" * 16, bytes(12)),
        lambda: impl.AEAD(0x1301, bytes(16), None),
        lambda: impl.PacketProtection(0x1301, bytes(16), bytes(12)),
        lambda: impl.HeaderProtection(1.0, bytes(16)),
    ]:
        with pytest.raises(TypeError):
            bad()


def test_call_validation(impl):
    E = impl.CryptoError
    k = (0x1301, bytes(16), bytes(12), bytes(16))
    pp, aead, hp = make_pp(impl, k), impl.AEAD(*k[:3]), impl.HeaderProtection(k[0], k[3])
    header, payload = b"\x41\x00\x00", bytes(30)
    packet = pp.protect(header, payload, 0)
    cases = [
        (E, lambda: pp.protect(header, payload, -1)),  # pn range: [0, 2^62)
        (E, lambda: pp.protect(header, payload, PN_LIMIT)),
        (E, lambda: pp.protect(header, payload, 2**100)),
        (E, lambda: aead.seal(PN_LIMIT, b"", b"")),
        (E, lambda: aead.open(-1, b"", bytes(16))),
        (E, lambda: pp.protect(b"\x43\x00\x00", payload, 0)),  # header shorter than 1 + pn_len
        (E, lambda: pp.protect(b"\x40", payload, 0)),
        (E, lambda: pp.protect(b"", payload, 0)),
        (E, lambda: pp.protect(b"\x40\x00", b"abc"[:2], 0)),  # payload too short to sample
        (E, lambda: pp.unprotect(packet, 0, -1)),  # pn_offset >= 1
        (E, lambda: pp.unprotect(packet, len(packet) - 19, -1)),  # sample past the end
        (E, lambda: pp.unprotect(packet, 2**80, -1)),
        (E, lambda: pp.unprotect(packet, 1, -2)),  # largest_pn in [-1, 2^62)
        (E, lambda: pp.unprotect(packet, 1, PN_LIMIT)),
        (E, lambda: hp.remove(packet, len(packet))),
        (E, lambda: hp.apply(bytes(20), 1)),
        (E, lambda: hp.mask(bytes(15))),
        (E, lambda: hp.mask(bytes(17))),
        (E, lambda: aead.open(0, b"", bytes(15))),  # shorter than the tag
        (E, lambda: pp.protect_into(bytearray(len(packet) - 1), 0, header, payload, 0)),  # out too small
        (E, lambda: pp.protect_into(bytearray(len(packet)), 1, header, payload, 0)),
        (E, lambda: pp.protect_into(bytearray(100), 101, header, payload, 0)),
        (E, lambda: pp.protect_into(bytearray(100), -1, header, payload, 0)),
        (E, lambda: pp.protect_into(bytes(100), 0, header, payload, 0)),  # read-only out
        (E, lambda: pp.protect_into(memoryview(bytearray(100)).toreadonly(), 0, header, payload, 0)),
        (E, lambda: aead.seal_into(bytearray(15), 0, 0, b"", b"")),
        (E, lambda: aead.seal_into(b"x" * 64, 0, 0, b"", b"")),
        (E, lambda: aead.seal_into(bytearray(64), 2**70, 0, b"", b"")),
        (E, lambda: impl.decode_packet_number(0, 0, 0)),
        (E, lambda: impl.decode_packet_number(0, 5, 0)),
        (E, lambda: impl.decode_packet_number(256, 1, 0)),
        (E, lambda: impl.decode_packet_number(-1, 1, 0)),
        (E, lambda: impl.decode_packet_number(0, 1, -2)),
        (E, lambda: pp.protect_batch([(header, payload, 0), (header, b"", 0)])),
        (E, lambda: pp.unprotect_batch(packet, [(0, len(packet) + 1, 1)], -1)),  # outside the buffer
        (E, lambda: pp.unprotect_batch(packet, [(1, len(packet), 1)], -1)),
        (E, lambda: pp.unprotect_batch(packet, [(-1, 10, 1)], -1)),
        (E, lambda: pp.unprotect_batch(packet, [(0, len(packet), 0)], -1)),  # pn_offset >= 1
        (E, lambda: pp.unprotect_batch(packet, [(0, len(packet), 1)], -2)),
        (TypeError, lambda: pp.protect(header, payload, 1.0)),
        (TypeError, lambda: pp.protect(header, payload, "1")),
        (TypeError, lambda: pp.protect("header", payload, 0)),
        (TypeError, lambda: pp.protect(header, None, 0)),
        (TypeError, lambda: pp.protect(header, payload)),
        (TypeError, lambda: pp.protect(header, payload, 0, 1)),
        (TypeError, lambda: pp.protect(header, payload, packet_numbr=0)),
        (TypeError, lambda: pp.unprotect(packet, 1.5, -1)),
        (TypeError, lambda: aead.seal_into(bytearray(64), None, 0, b"", b"")),
        (TypeError, lambda: pp.protect_batch([(header, payload)])),  # not a 3-tuple
        (TypeError, lambda: pp.protect_batch([[header, payload, 0]])),
        (TypeError, lambda: pp.protect_batch(None)),
        (TypeError, lambda: pp.unprotect_batch(packet, [(0, 10)], -1)),
        (TypeError, lambda: pp.unprotect_batch(packet, [(0, 10.0, 1)], -1)),
        (TypeError, lambda: pp.unprotect_batch(packet, [None], -1)),
        (TypeError, lambda: pp.unprotect_batch("packet", [], -1)),
    ]
    for i, (exc, fn) in enumerate(cases):
        with pytest.raises(exc):
            fn()
            pytest.fail(f"case {i} did not raise")
    # The minimum payload for each packet number length is accepted.
    for pn_len in range(1, 5):
        h = bytes([0x40 | (pn_len - 1)]) + bytes(pn_len)
        pkt = pp.protect(h, bytes(4 - pn_len), 0)
        assert len(pkt) == 1 + 4 + 16 and pp.unprotect(pkt, 1, -1) == (h, bytes(4 - pn_len), 0)


def test_buffers_are_released(impl):
    # After a call, even a failed one, the caller's bytearray can be resized.
    k = (0x1301, bytes(16), bytes(12), bytes(16))
    pp = make_pp(impl, k)
    buf = bytearray(pp.protect(b"\x40\x00", bytes(30), 0))
    pp.unprotect(buf, 1, -1)
    pp.unprotect_batch(buf, [(0, len(buf), 1)], -1)
    pp.protect_into(buf, 0, b"\x40\x00", bytes(30), 0)
    buf.append(0)
    with pytest.raises(impl.CryptoError):
        pp.unprotect(buf, 1, -1)
    buf.append(0)


# --------------------------------------------------------------- threads


@pytest.mark.parametrize("suite", SUITES, ids=hex)
def test_threads_share_one_object(impl, suite):
    """Batches (which release the GIL in C) and singles from several threads on one object."""
    n = KEY_LENGTH[suite]
    k = (suite, bytes(n), bytes(12), bytes(range(n)))
    pp = make_pp(impl, k)
    batch = [(b"\x43" + bytes(4) + n.to_bytes(4, "big"), bytes(1000), n) for n in range(32)]
    expected = b"".join(make_pp(impl, k).protect(*b) for b in batch)
    size = len(expected) // 32
    segments = [(i * size, size, 5) for i in range(32)]
    errors = []

    def worker(seed):
        try:
            for i in range(30):
                if (seed + i) % 3 == 0:
                    assert pp.protect_batch(batch) == expected
                elif (seed + i) % 3 == 1:
                    assert [r[2] for r in pp.unprotect_batch(expected, segments, -1)] == list(range(32))
                else:
                    assert pp.protect(*batch[i % 32]) == expected[(i % 32) * size : (i % 32 + 1) * size]
                    assert pp.unprotect(expected[:size], 5, -1)[2] == 0
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose races
    try:
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors


@pytest.mark.parametrize("suite", SUITES, ids=hex)
def test_threads_share_header_protection(impl, suite):
    """Masks use one cipher context per object (ChaCha20 re-keys it per sample):
    concurrent mask() calls must neither mix samples nor trip over each other."""
    hp = impl.HeaderProtection(suite, bytes(range(KEY_LENGTH[suite])))
    samples = [bytes([i]) * 16 for i in range(64)]
    expected = [impl.HeaderProtection(suite, bytes(range(KEY_LENGTH[suite]))).mask(x) for x in samples]
    errors = []

    def worker():
        try:
            for _ in range(150):
                assert [hp.mask(x) for x in samples] == expected
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:1]
