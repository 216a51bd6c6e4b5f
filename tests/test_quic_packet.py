# pyquic.packet: the invariant-header step of two-step decoding, against the
# protected packets of RFC 9001 / RFC 9369 Appendix A (v1 and v2 type bits);
# coalesced datagrams; Version Negotiation; Retry (built and checked against
# the RFC's bytes); packet numbers (RFC 9000 A.2 / A.3, our pure decoder and
# the crypto backend's); malformed headers end a datagram without raising.
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyquic import packet
from pyquic.errors import TransportError, UsageError
from pyquic.packet import (
    PacketDecodeError,
    PacketType,
    check_reserved_bits,
    decode_header,
    decode_packet_number,
    encode_long_header,
    encode_packet_number,
    encode_retry,
    encode_short_header,
    encode_version_negotiation,
    packet_number_length,
    set_long_header_length,
    split_datagram,
)
from pyquic.versions import QUIC_V1, QUIC_V2

from .vectors import h, load

CASES = [(QUIC_V1, "rfc9001_appendix_a.json"), (QUIC_V2, "rfc9369_appendix_a.json")]
A = load("rfc9000_appendix_a.json")


# --- RFC 9001 / 9369 Appendix A ----------------------------------------------------


@pytest.mark.parametrize("version,name", CASES)
def test_client_initial_header(version, name):
    v = load(name)
    pkt = h(v["client_initial"]["protected_packet"])
    hdr = decode_header(pkt, short_dcid_length=8)
    assert hdr.packet_type is PacketType.INITIAL
    assert hdr.version == version
    assert hdr.destination_cid == h(v["client_destination_connection_id"])
    assert hdr.source_cid == b"" and hdr.token == b""
    unprotected = h(v["client_initial"]["unprotected_header"])
    pn_length = v["client_initial"]["packet_number_length"]
    assert hdr.pn_offset == len(unprotected) - pn_length
    assert hdr.length == len(pkt) == 1200
    # The Length field covers the packet number and the protected payload.
    assert hdr.length - hdr.pn_offset == v["client_initial"]["payload_length"] + pn_length + 16


@pytest.mark.parametrize("version,name", CASES)
def test_server_initial_header(version, name):
    v = load(name)
    pkt = h(v["server_initial"]["protected_packet"])
    hdr = decode_header(pkt, short_dcid_length=0)
    assert hdr.packet_type is PacketType.INITIAL and hdr.version == version
    assert hdr.destination_cid == b""
    assert hdr.source_cid == h(v["retry"]["fields_parsed_from_packet"]["source_connection_id"])
    unprotected = h(v["server_initial"]["unprotected_header"])
    assert hdr.pn_offset == len(unprotected) - v["server_initial"]["packet_number_length"]
    assert hdr.length == len(pkt)


@pytest.mark.parametrize("version,name", CASES)
def test_retry_header_and_encoding(version, name):
    v = load(name)
    fields = v["retry"]["fields_parsed_from_packet"]
    pkt = h(v["retry"]["packet"])
    hdr = decode_header(pkt, short_dcid_length=0)
    assert hdr.packet_type is PacketType.RETRY and hdr.version == version
    assert hdr.destination_cid == h(fields["destination_connection_id"])
    assert hdr.source_cid == h(fields["source_connection_id"])
    assert hdr.token == h(fields["retry_token"])
    assert hdr.integrity_tag == h(fields["retry_integrity_tag"])
    assert hdr.pn_offset == -1
    built = encode_retry(
        version,
        h(fields["destination_connection_id"]),
        h(fields["source_connection_id"]),
        h(fields["retry_token"]),
        h(v["retry"]["original_destination_connection_id"]),
        unused=int(fields["first_byte"], 16) & 0x0F,
    )
    assert built == pkt


@pytest.mark.parametrize("version,name", CASES)
def test_unprotected_headers_rebuild(version, name):
    v = load(name)
    for side, dcid, scid in (
        ("client_initial", h(v["client_destination_connection_id"]), b""),
        ("server_initial", b"", h(v["retry"]["fields_parsed_from_packet"]["source_connection_id"])),
    ):
        case = v[side]
        pn_length = case["packet_number_length"]
        payload = len(h(case["protected_packet"])) - len(h(case["unprotected_header"]))  # frames + tag
        header = encode_long_header(version, PacketType.INITIAL, dcid, scid, case["packet_number"], pn_length)
        set_long_header_length(header, payload)
        assert bytes(header) == h(case["unprotected_header"])
        direct = encode_long_header(
            version, PacketType.INITIAL, dcid, scid, case["packet_number"], pn_length, payload_length=payload
        )
        assert direct == header


@pytest.mark.parametrize("version,name", CASES)
def test_short_header_example(version, name):
    case = load(name)["chacha20_poly1305_short_header"]
    header = encode_short_header(b"", case["packet_number"], case["packet_number_length"])
    assert header == h(case["unprotected_header"])
    hdr = decode_header(h(case["protected_packet"]), short_dcid_length=0)
    assert hdr.packet_type is PacketType.ONE_RTT and hdr.version is None
    assert hdr.pn_offset == 1 and hdr.length == len(h(case["protected_packet"]))


@pytest.mark.parametrize("version,name", CASES)
def test_two_step_decode_with_packet_protection(version, name):
    from pyquic import crypto
    from pyquic.frames import Crypto, Padding, parse_frames

    v = load(name)
    dcid = h(v["client_destination_connection_id"])
    _, server_receive = crypto.initial_keys(version, dcid, is_client=False)
    split = split_datagram(h(v["client_initial"]["protected_packet"]), 8)
    assert split.error is None and len(split.packets) == 1
    hdr, pkt = split.packets[0]
    plain_header, payload, pn = server_receive.protection.unprotect(pkt, hdr.pn_offset, -1)
    assert pn == v["client_initial"]["packet_number"]
    assert plain_header == h(v["client_initial"]["unprotected_header"])
    check_reserved_bits(plain_header[0])
    parsed = parse_frames(payload, hdr.packet_type)
    assert [type(f) for f in parsed.frames] == [Crypto, Padding]
    assert parsed.ack_eliciting and parsed.in_flight
    assert sum(f.length for f in parsed.frames if type(f) is Padding) + 4 + 241 == len(payload)


# --- coalescing --------------------------------------------------------------------


def _long(version, ptype, dcid, scid, pn, body, token=b""):
    header = encode_long_header(version, ptype, dcid, scid, pn, 2, token=token, payload_length=len(body))
    return bytes(header) + body


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
def test_coalesced_initial_handshake_short(version):
    dcid, scid = b"\x01" * 8, b"\x02" * 5
    initial = _long(version, PacketType.INITIAL, dcid, scid, 0, b"i" * 40, token=b"tok")
    handshake = _long(version, PacketType.HANDSHAKE, dcid, scid, 1, b"h" * 30)
    zero_rtt = _long(version, PacketType.ZERO_RTT, dcid, scid, 2, b"z" * 30)
    short = encode_short_header(dcid, 7, 1) + b"s" * 25
    datagram = initial + handshake + zero_rtt + short
    split = split_datagram(bytearray(datagram), 8)
    assert split.error is None
    types = [hdr.packet_type for hdr, _ in split.packets]
    assert types == [PacketType.INITIAL, PacketType.HANDSHAKE, PacketType.ZERO_RTT, PacketType.ONE_RTT]
    assert [bytes(p) for _, p in split.packets] == [initial, handshake, zero_rtt, short]
    assert [hdr.offset for hdr, _ in split.packets] == [0, len(initial), len(initial) + len(handshake), len(datagram) - len(short)]
    assert split.packets[0][0].token == b"tok"
    assert all(hdr.destination_cid == dcid for hdr, _ in split.packets)
    assert split.packets[3][0].pn_offset == 9


def test_coalesced_packet_with_another_dcid_ends_the_datagram():
    first = _long(QUIC_V1, PacketType.INITIAL, b"A" * 8, b"", 0, b"x" * 30)
    other = _long(QUIC_V1, PacketType.HANDSHAKE, b"B" * 8, b"", 0, b"y" * 30)
    split = split_datagram(first + other, 8)
    assert len(split.packets) == 1 and "different destination connection ID" in split.error


def test_trailing_garbage_keeps_earlier_packets():
    first = _long(QUIC_V1, PacketType.INITIAL, b"A" * 8, b"", 0, b"x" * 30)
    split = split_datagram(first + bytes(20), 8)  # zeros: short header with a zero fixed bit
    assert len(split.packets) == 1 and "fixed bit" in split.error


# --- version negotiation and unknown versions -------------------------------------------


def test_version_negotiation_round_trip():
    pkt = encode_version_negotiation(b"c" * 30, b"s" * 3, [QUIC_V1, QUIC_V2, 0x1A2A3A4A], unused=0x15)
    assert pkt[0] & 0xC0 == 0xC0 and pkt[1:5] == bytes(4)
    hdr = decode_header(pkt, short_dcid_length=8)
    assert hdr.packet_type is PacketType.VERSION_NEGOTIATION and hdr.version == 0
    assert hdr.destination_cid == b"c" * 30  # RFC 8999: longer than 20 bytes is fine here
    assert hdr.source_cid == b"s" * 3
    assert hdr.supported_versions == (QUIC_V1, QUIC_V2, 0x1A2A3A4A)
    assert split_datagram(pkt, 8).packets[0][0] == hdr


@pytest.mark.parametrize("tail", [b"", b"\x00\x00\x00\x01\x00"])
def test_version_negotiation_with_a_bad_list(tail):
    pkt = b"\x80" + bytes(4) + b"\x00\x00" + tail
    split = split_datagram(pkt, 8)
    assert split.packets == [] and "multiple of 4" in split.error


def test_unknown_version_is_returned_not_an_error():
    cid = b"D" * 40  # other versions may use CIDs up to 255 bytes
    pkt = b"\xc0" + (0x0A0A0A0A).to_bytes(4, "big") + bytes((len(cid),)) + cid + b"\x00" + b"whatever" * 150
    split = split_datagram(pkt, 8)
    assert split.error is None and len(split.packets) == 1
    hdr, body = split.packets[0]
    assert hdr.packet_type is PacketType.UNKNOWN_VERSION and hdr.version == 0x0A0A0A0A
    assert hdr.destination_cid == cid and hdr.length == len(pkt) == len(body)


# --- malformed headers -----------------------------------------------------------------

GOOD = _long(QUIC_V1, PacketType.INITIAL, b"A" * 8, b"B" * 8, 0, b"x" * 40, token=b"t" * 5)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"\xc0\x00\x00\x00", "too short"),
        (b"\xc0\x00\x00\x00\x01\x15" + b"A" * 21 + b"\x00\x00\x00", "21 bytes"),  # v1 DCID > 20 (§17.2)
        (b"\xc0\x00\x00\x00\x01\x00\x15" + b"B" * 21 + b"\x00\x00", "21 bytes"),
        (b"\x80\x00\x00\x00\x01\x00\x00\x00\x05" + b"x" * 30, "fixed bit"),
        (b"\xc0\x00\x00\x00\x01\x08AAAA", "destination connection ID"),
        (b"\xc0\x00\x00\x00\x01\x00\x08AAAA", "source connection ID"),
        (b"\xc0\x00\x00\x00\x01\x00\x00\x10tok", "token"),
        (b"\xc0\x00\x00\x00\x01\x00\x00\x00", "truncated"),
        (b"\xc0\x00\x00\x00\x01\x00\x00\x00\x80\x00", "truncated"),
        (b"\xc0\x00\x00\x00\x01\x00\x00\x00\x40\x30" + b"x" * 20, "runs past"),
        (b"\xf0\x00\x00\x00\x01\x00\x00" + b"x" * 15, "integrity tag"),  # v1 Retry (type 3)
        (b"\xf0\x00\x00\x00\x01\x00\x00" + b"x" * 16, "empty token"),  # §17.2.5.2
        (b"\x40" + b"A" * 5, "connection ID"),  # short header, DCID of 8 expected
        (b"\x00" + b"A" * 20, "fixed bit"),
    ],
)
def test_malformed_headers(data, reason):
    with pytest.raises(PacketDecodeError, match=reason):
        decode_header(data, short_dcid_length=8)
    split = split_datagram(data, 8)
    if data:
        assert split.packets == [] and reason in split.error


def test_fixed_bit_may_be_greased():
    pkt = bytes([GOOD[0] & ~0x40]) + GOOD[1:]
    assert split_datagram(pkt, 8).error is not None
    assert split_datagram(pkt, 8, fixed_bit_required=False).error is None


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=20))
def test_split_never_raises(data, dcid_length):
    split = split_datagram(data, dcid_length)
    assert sum(hdr.length for hdr, _ in split.packets) <= len(data)
    for hdr, pkt in split.packets:
        assert len(pkt) == hdr.length
        assert hdr.pn_offset <= hdr.length


@given(st.integers(min_value=1, max_value=len(GOOD) - 1))
def test_every_truncation_of_a_long_header(cut):
    split = split_datagram(GOOD[:cut], 8)
    assert split.packets == [] and split.error


def test_reserved_bits():
    check_reserved_bits(0xC3)
    check_reserved_bits(0x47)
    for first in (0xC4, 0xC8, 0x48, 0x50):
        with pytest.raises(TransportError) as info:
            check_reserved_bits(first)
        assert info.value.code == 0x0A


# --- packet numbers (RFC 9000 §17.1, A.2, A.3) ------------------------------------------------


@pytest.mark.parametrize("case", A["packet_number_encoding_examples"], ids=lambda c: c["full_pn_hex"])
def test_a2_packet_number_length(case):
    length = packet_number_length(case["full_pn"], case["largest_acked"])
    assert length == case["encoded_bytes"]
    assert encode_packet_number(case["full_pn"], length) == int(case["truncated_pn_hex"], 16).to_bytes(length, "big")


def test_packet_number_length_edges():
    assert packet_number_length(0, None) == 1
    assert packet_number_length(126, None) == 1  # 127 outstanding: 256 > 254
    assert packet_number_length(127, -1) == 2  # 128 outstanding: 256 is not > 256
    # §17.1: more than twice the range -- 128 unacked needs 2 bytes (2^8 is not > 256).
    assert packet_number_length(228, 100) == 2
    assert packet_number_length(227, 100) == 1
    assert packet_number_length(1 << 30, 0) == 4
    with pytest.raises(UsageError):
        packet_number_length(1 << 31, 0)
    with pytest.raises(UsageError):
        packet_number_length(5, 5)


@pytest.mark.parametrize("case", A["packet_number_decoding_examples"])
def test_a3_packet_number_decoding(case):
    nbytes = case["pn_nbits"] // 8
    assert decode_packet_number(case["truncated_pn"], nbytes, case["largest_pn"]) == case["decoded_pn"]
    from pyquic import crypto
    assert crypto.backend.decode_packet_number(case["truncated_pn"], nbytes, case["largest_pn"]) == case["decoded_pn"]


@given(
    st.integers(min_value=-1, max_value=(1 << 62) - 2),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=(1 << 31) - 1),
)
def test_packet_number_round_trip(largest, pn_length, distance):
    """A packet number within half the window of largest+1 decodes back (A.3), and
    both decoders agree everywhere."""
    window = 1 << (8 * pn_length)
    pn = largest + 1 + (distance % (window // 2)) - (window // 4 if largest > window else 0)
    pn = max(0, min(pn, (1 << 62) - 1))
    truncated = int.from_bytes(encode_packet_number(pn, pn_length), "big")
    assert decode_packet_number(truncated, pn_length, largest) == pn
    try:
        from pyquic.crypto import backend
    except ImportError:
        return
    assert backend.decode_packet_number(truncated, pn_length, largest) == pn


@given(st.integers(min_value=0, max_value=(1 << 40)), st.integers(min_value=0, max_value=1 << 31))
def test_chosen_length_always_decodes(largest_acked, ahead):
    """Encoding with the §17.1 length, then decoding against the largest acked
    (the peer's largest received is at least that), recovers the number."""
    pn = largest_acked + 1 + ahead
    try:
        length = packet_number_length(pn, largest_acked)
    except UsageError:
        return
    truncated = int.from_bytes(encode_packet_number(pn, length), "big")
    assert decode_packet_number(truncated, length, largest_acked) == pn


def test_encoding_misuse():
    with pytest.raises(UsageError):
        encode_long_header(0x0A0A0A0A, PacketType.INITIAL, b"", b"", 0, 1)
    with pytest.raises(UsageError):
        encode_long_header(QUIC_V1, PacketType.HANDSHAKE, b"", b"", 0, 1, token=b"x")
    with pytest.raises(UsageError):
        encode_long_header(QUIC_V1, PacketType.INITIAL, b"x" * 21, b"", 0, 1)
    with pytest.raises(UsageError):
        encode_long_header(QUIC_V1, PacketType.INITIAL, b"", b"", 0, 1, payload_length=1 << 14)
    with pytest.raises(UsageError):
        encode_short_header(b"", 0, 5)
    with pytest.raises(UsageError):
        encode_retry(QUIC_V1, b"", b"", b"", b"")


def test_long_header_type_bits_follow_the_version():
    for version, name in CASES:
        types = load(name).get("long_header_packet_types") or {"Initial": "0b00", "0-RTT": "0b01", "Handshake": "0b10", "Retry": "0b11"}
        for label, ptype in (("Initial", PacketType.INITIAL), ("0-RTT", PacketType.ZERO_RTT), ("Handshake", PacketType.HANDSHAKE)):
            header = encode_long_header(version, ptype, b"", b"", 0, 1)
            assert (header[0] >> 4) & 3 == int(types[label], 2)
            assert decode_header(bytes(header) + b"x" * 20, short_dcid_length=0).packet_type is ptype
    assert packet.MAX_CID_LENGTH == 20


# --- interop with aioquic's header codec (a real peer library) ----------------------------------


def test_aioquic_builds_we_parse():
    from aioquic.quic import packet as aio

    vn = aio.encode_quic_version_negotiation(b"s" * 8, b"d" * 8, [QUIC_V1, QUIC_V2])
    hdr = decode_header(vn, short_dcid_length=8)
    assert hdr.packet_type is PacketType.VERSION_NEGOTIATION
    assert (hdr.destination_cid, hdr.source_cid, hdr.supported_versions) == (b"d" * 8, b"s" * 8, (QUIC_V1, QUIC_V2))
    for version in (QUIC_V1, QUIC_V2):
        retry = aio.encode_quic_retry(version, b"s" * 8, b"d" * 4, b"o" * 8, b"retry-token")
        hdr = decode_header(retry, short_dcid_length=8)
        assert hdr.packet_type is PacketType.RETRY and hdr.token == b"retry-token"
        assert encode_retry(version, b"d" * 4, b"s" * 8, b"retry-token", b"o" * 8) == retry


def test_we_build_aioquic_parses():
    from aioquic.buffer import Buffer
    from aioquic.quic import packet as aio

    vn = encode_version_negotiation(b"d" * 8, b"s" * 8, [QUIC_V1, QUIC_V2])
    theirs = aio.pull_quic_header(Buffer(data=vn), host_cid_length=8)
    assert theirs.supported_versions == [QUIC_V1, QUIC_V2] and theirs.destination_cid == b"d" * 8
    for version in (QUIC_V1, QUIC_V2):
        for ptype, aio_type in (
            (PacketType.INITIAL, aio.QuicPacketType.INITIAL),
            (PacketType.ZERO_RTT, aio.QuicPacketType.ZERO_RTT),
            (PacketType.HANDSHAKE, aio.QuicPacketType.HANDSHAKE),
        ):
            token = b"tk" if ptype is PacketType.INITIAL else b""
            pkt = _long(version, ptype, b"d" * 8, b"s" * 6, 3, b"p" * 40, token=token)
            theirs = aio.pull_quic_header(Buffer(data=pkt), host_cid_length=8)
            assert theirs.packet_type == aio_type and theirs.version == version
            assert (theirs.destination_cid, theirs.source_cid, theirs.token) == (b"d" * 8, b"s" * 6, token)
            assert theirs.packet_length == len(pkt)
