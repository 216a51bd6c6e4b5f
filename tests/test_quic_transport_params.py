# pyquic.transport_params: round trips, every validation rule of RFC 9000
# §7.3, §7.4, §18.2 (and RFC 9368 / 9221 / 9287 parameters), and interop with
# a real peer library: aioquic's own encoder and parser
# (aioquic.quic.packet.push/pull_quic_transport_parameters) in both directions.
import pytest
from aioquic.buffer import Buffer as AioBuffer
from aioquic.quic import packet as aio
from hypothesis import given
from hypothesis import strategies as st

from pyquic.buffer import encode_varint
from pyquic.errors import ErrorCode, TransportError, UsageError
from pyquic.transport_params import (
    ParamId,
    PreferredAddress,
    QuicTransportParameters,
    VersionInformation,
    encode_transport_parameters,
    is_grease,
    parse_transport_parameters,
)
from pyquic.versions import QUIC_V1, QUIC_V2

TPE = ErrorCode.TRANSPORT_PARAMETER_ERROR
CID = b"\x11" * 8
PREFERRED = PreferredAddress(("192.0.2.1", 4433), ("2001:db8::1", 4434), b"\x22" * 8, b"\x33" * 16)

CLIENT = QuicTransportParameters(
    max_idle_timeout=30000,
    max_udp_payload_size=1452,
    initial_max_data=1 << 20,
    initial_max_stream_data_bidi_local=1 << 18,
    initial_max_stream_data_bidi_remote=1 << 18,
    initial_max_stream_data_uni=1 << 17,
    initial_max_streams_bidi=100,
    initial_max_streams_uni=3,
    ack_delay_exponent=10,
    max_ack_delay=(1 << 14) - 1,
    disable_active_migration=True,
    active_connection_id_limit=8,
    initial_source_connection_id=CID,
    version_information=VersionInformation(QUIC_V1, (QUIC_V1, QUIC_V2)),
    max_datagram_frame_size=65535,
    grease_quic_bit=True,
)
SERVER = QuicTransportParameters(
    original_destination_connection_id=b"\x44" * 8,
    stateless_reset_token=b"\x55" * 16,
    preferred_address=PREFERRED,
    initial_source_connection_id=b"",  # a zero-length CID is a valid value
    retry_source_connection_id=b"\x66" * 20,
    initial_max_data=10,
    version_information=VersionInformation(QUIC_V2, (QUIC_V2, QUIC_V1)),
)


def tp(param_id, value):
    return encode_varint(param_id) + encode_varint(len(value)) + value


def vint(value):
    return encode_varint(value)


MINIMAL_CLIENT = tp(ParamId.INITIAL_SOURCE_CONNECTION_ID, CID)
MINIMAL_SERVER = MINIMAL_CLIENT + tp(ParamId.ORIGINAL_DESTINATION_CONNECTION_ID, CID)


def rejects(data, from_server):
    with pytest.raises(TransportError) as info:
        parse_transport_parameters(data, from_server=from_server)
    assert info.value.code == TPE
    return info.value.reason


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("params,from_server", [(CLIENT, False), (SERVER, True)], ids=["client", "server"])
def test_round_trip(params, from_server):
    assert QuicTransportParameters.parse(params.encode(), from_server=from_server) == params


def test_defaults_are_omitted_and_filled_in():
    params = parse_transport_parameters(MINIMAL_CLIENT, from_server=False)
    assert params == QuicTransportParameters(initial_source_connection_id=CID)
    assert params.max_udp_payload_size == 65527 and params.ack_delay_exponent == 3
    assert params.max_ack_delay == 25 and params.active_connection_id_limit == 2
    assert encode_transport_parameters(params) == MINIMAL_CLIENT
    # Explicit defaults parse to the same thing.
    explicit = MINIMAL_CLIENT + tp(ParamId.ACK_DELAY_EXPONENT, vint(3)) + tp(ParamId.MAX_ACK_DELAY, vint(25))
    assert parse_transport_parameters(explicit, from_server=False) == params


@given(
    st.integers(min_value=0, max_value=(1 << 62) - 1),
    st.integers(min_value=1200, max_value=65527),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=0, max_value=(1 << 14) - 1),
    st.integers(min_value=2, max_value=(1 << 62) - 1),
    st.integers(min_value=0, max_value=1 << 60),
    st.binary(max_size=20),
)
def test_round_trip_any_valid_values(number, udp, exponent, delay, cid_limit, streams, cid):
    params = QuicTransportParameters(
        initial_max_data=number,
        max_udp_payload_size=udp,
        ack_delay_exponent=exponent,
        max_ack_delay=delay,
        active_connection_id_limit=cid_limit,
        initial_max_streams_uni=streams,
        initial_source_connection_id=cid,
    )
    assert parse_transport_parameters(params.encode(), from_server=False) == params


# --- validation (RFC 9000 §7.3, §7.4, §18.2) --------------------------------------------------


@pytest.mark.parametrize(
    "param_id,value",
    [
        (ParamId.MAX_UDP_PAYLOAD_SIZE, vint(1199)),
        (ParamId.ACK_DELAY_EXPONENT, vint(21)),
        (ParamId.MAX_ACK_DELAY, vint(1 << 14)),
        (ParamId.ACTIVE_CONNECTION_ID_LIMIT, vint(1)),
        (ParamId.ACTIVE_CONNECTION_ID_LIMIT, vint(0)),
        (ParamId.INITIAL_MAX_STREAMS_BIDI, vint((1 << 60) + 1)),  # §4.6
        (ParamId.INITIAL_MAX_STREAMS_UNI, vint((1 << 60) + 1)),
        (ParamId.MAX_IDLE_TIMEOUT, vint(5) + b"\x00"),  # value longer than its varint
        (ParamId.MAX_IDLE_TIMEOUT, b""),
        (ParamId.MAX_IDLE_TIMEOUT, b"\x80\x00"),  # truncated varint inside the value
        (ParamId.DISABLE_ACTIVE_MIGRATION, b"\x00"),  # must be empty
        (ParamId.GREASE_QUIC_BIT, b"\x01"),
        (ParamId.VERSION_INFORMATION, b""),
        (ParamId.VERSION_INFORMATION, b"\x00\x00\x00\x01\x00\x00"),  # not a multiple of 4
        (ParamId.VERSION_INFORMATION, bytes(4)),  # RFC 9368 §4: version 0
        (ParamId.VERSION_INFORMATION, b"\x00\x00\x00\x01" + bytes(4)),
        (ParamId.INITIAL_SOURCE_CONNECTION_ID, b"x" * 21),
    ],
)
def test_invalid_values(param_id, value):
    data = tp(param_id, value) + (MINIMAL_CLIENT if param_id != ParamId.INITIAL_SOURCE_CONNECTION_ID else b"")
    rejects(data, from_server=False)
    rejects(data + tp(ParamId.ORIGINAL_DESTINATION_CONNECTION_ID, CID), from_server=True)


@pytest.mark.parametrize("value", [vint(1200), vint(20), vint((1 << 14) - 1), vint(2), vint(1 << 60)])
def test_values_at_the_limits_are_accepted(value):
    ids = {
        vint(1200): ParamId.MAX_UDP_PAYLOAD_SIZE,
        vint(20): ParamId.ACK_DELAY_EXPONENT,
        vint((1 << 14) - 1): ParamId.MAX_ACK_DELAY,
        vint(2): ParamId.ACTIVE_CONNECTION_ID_LIMIT,
        vint(1 << 60): ParamId.INITIAL_MAX_STREAMS_BIDI,
    }
    parse_transport_parameters(tp(ids[value], value) + MINIMAL_CLIENT, from_server=False)


@pytest.mark.parametrize(
    "param_id,value",
    [
        (ParamId.ORIGINAL_DESTINATION_CONNECTION_ID, CID),
        (ParamId.STATELESS_RESET_TOKEN, b"\x01" * 16),
        (ParamId.PREFERRED_ADDRESS, None),
        (ParamId.RETRY_SOURCE_CONNECTION_ID, CID),
    ],
)
def test_server_only_parameters_from_a_client(param_id, value):
    if value is None:  # the preferred_address body: skip our encoding's id and length bytes
        value = QuicTransportParameters(preferred_address=PREFERRED).encode()[2:]
    data = MINIMAL_CLIENT + tp(param_id, value)
    assert "server-only" in rejects(data, from_server=False)  # §18.2
    parse_transport_parameters(data + (b"" if param_id == 0 else tp(0, CID)), from_server=True)


def test_stateless_reset_token_must_be_16_bytes():
    for n in (0, 15, 17):
        rejects(MINIMAL_SERVER + tp(ParamId.STATELESS_RESET_TOKEN, b"\x01" * n), from_server=True)


def test_required_connection_ids():
    # §7.3: initial_source_connection_id from both; original_destination_connection_id from a server.
    assert "initial_source" in rejects(b"", from_server=False)
    assert "initial_source" in rejects(tp(0, CID), from_server=True)
    assert "original_destination" in rejects(MINIMAL_CLIENT, from_server=True)
    parse_transport_parameters(MINIMAL_SERVER, from_server=True)


def test_duplicates_are_rejected():
    assert "duplicate" in rejects(MINIMAL_CLIENT + tp(ParamId.INITIAL_MAX_DATA, vint(1)) * 2, from_server=False)
    assert "duplicate" in rejects(MINIMAL_CLIENT * 2, from_server=False)
    assert "duplicate" in rejects(MINIMAL_CLIENT + tp(0x4242, b"") * 2, from_server=False)


def test_unknown_and_grease_parameters_are_ignored():
    grease = [31 * n + 27 for n in (0, 1, 1000, 1 << 40)]
    assert all(is_grease(g) for g in grease) and not any(is_grease(p) for p in range(0x12))
    data = MINIMAL_CLIENT + b"".join(tp(g, b"grease" * 3) for g in grease) + tp(0x4242, b"\xff" * 5) + tp(0x0C37, b"q")
    assert parse_transport_parameters(data, from_server=False) == QuicTransportParameters(initial_source_connection_id=CID)


@pytest.mark.parametrize(
    "tail",
    [b"\x04", b"\x04\x05\x01", b"\x40", b"\x04\x80\x00\x00", tp(ParamId.INITIAL_MAX_DATA, vint(1))[:-1]],
)
def test_truncated_input(tail):
    assert "truncated" in rejects(MINIMAL_CLIENT + tail, from_server=False)


def test_preferred_address_rules():
    body = QuicTransportParameters(preferred_address=PREFERRED).encode()[2:]
    assert len(body) == 41 + 8
    # §18.2: a zero-length connection ID here is a TRANSPORT_PARAMETER_ERROR.
    zero_cid = body[:24] + b"\x00" + b"\x33" * 16
    rejects(MINIMAL_SERVER + tp(ParamId.PREFERRED_ADDRESS, zero_cid), from_server=True)
    long_cid = body[:24] + b"\x15" + b"\x22" * 21 + b"\x33" * 16
    rejects(MINIMAL_SERVER + tp(ParamId.PREFERRED_ADDRESS, long_cid), from_server=True)
    rejects(MINIMAL_SERVER + tp(ParamId.PREFERRED_ADDRESS, body[:-1]), from_server=True)
    rejects(MINIMAL_SERVER + tp(ParamId.PREFERRED_ADDRESS, body + b"\x00"), from_server=True)
    rejects(MINIMAL_SERVER + tp(ParamId.PREFERRED_ADDRESS, body[:30]), from_server=True)
    # One family only: the other is all zeros and comes back as None.
    v6_only = PreferredAddress(None, ("::1", 443), b"\x01", b"\x02" * 16)
    params = QuicTransportParameters(
        original_destination_connection_id=CID, initial_source_connection_id=CID, preferred_address=v6_only
    )
    assert parse_transport_parameters(params.encode(), from_server=True).preferred_address == v6_only


def test_encoder_refuses_invalid_values():
    for bad in [
        QuicTransportParameters(ack_delay_exponent=21),
        QuicTransportParameters(max_udp_payload_size=1000),
        QuicTransportParameters(active_connection_id_limit=1),
        QuicTransportParameters(max_ack_delay=1 << 14),
        QuicTransportParameters(stateless_reset_token=b"short"),
        QuicTransportParameters(initial_source_connection_id=b"x" * 21),
        QuicTransportParameters(version_information=VersionInformation(0)),
        QuicTransportParameters(preferred_address=PreferredAddress(None, None, b"", b"\x00" * 16)),
        QuicTransportParameters(initial_max_data=1 << 62),
    ]:
        with pytest.raises(UsageError):
            bad.encode()


@given(st.binary(max_size=80), st.booleans())
def test_random_input_raises_only_transport_parameter_error(data, from_server):
    try:
        parse_transport_parameters(data, from_server=from_server)
    except TransportError as exc:
        assert exc.code == TPE


# --- interop with aioquic (a real peer library) ------------------------------------------------


def aio_encode(params: aio.QuicTransportParameters) -> bytes:
    buf = AioBuffer(capacity=4096)
    aio.push_quic_transport_parameters(buf, params)
    return buf.data


def aio_parse(data: bytes) -> aio.QuicTransportParameters:
    return aio.pull_quic_transport_parameters(AioBuffer(data=data))


def _aio_version_info(info):
    return None if info is None else aio.QuicVersionInformation(info.chosen_version, list(info.available_versions))


def to_aio(params: QuicTransportParameters) -> aio.QuicTransportParameters:
    pref = params.preferred_address
    return aio.QuicTransportParameters(
        original_destination_connection_id=params.original_destination_connection_id,
        max_idle_timeout=params.max_idle_timeout,
        stateless_reset_token=params.stateless_reset_token,
        max_udp_payload_size=params.max_udp_payload_size,
        initial_max_data=params.initial_max_data,
        initial_max_stream_data_bidi_local=params.initial_max_stream_data_bidi_local,
        initial_max_stream_data_bidi_remote=params.initial_max_stream_data_bidi_remote,
        initial_max_stream_data_uni=params.initial_max_stream_data_uni,
        initial_max_streams_bidi=params.initial_max_streams_bidi,
        initial_max_streams_uni=params.initial_max_streams_uni,
        ack_delay_exponent=params.ack_delay_exponent,
        max_ack_delay=params.max_ack_delay,
        disable_active_migration=params.disable_active_migration,
        preferred_address=None
        if pref is None
        else aio.QuicPreferredAddress(pref.ipv4_address, pref.ipv6_address, pref.connection_id, pref.stateless_reset_token),
        active_connection_id_limit=params.active_connection_id_limit,
        initial_source_connection_id=params.initial_source_connection_id,
        retry_source_connection_id=params.retry_source_connection_id,
        version_information=_aio_version_info(params.version_information),
        max_datagram_frame_size=params.max_datagram_frame_size,
    )


def without_grease_bit(params):
    from dataclasses import replace

    return replace(params, grease_quic_bit=False)  # aioquic does not know RFC 9287


@pytest.mark.parametrize("params,from_server", [(CLIENT, False), (SERVER, True)], ids=["client", "server"])
def test_aioquic_encodes_we_parse(params, from_server):
    params = without_grease_bit(params)
    ours = parse_transport_parameters(aio_encode(to_aio(params)), from_server=from_server)
    assert ours == params


@pytest.mark.parametrize("params", [CLIENT, SERVER], ids=["client", "server"])
def test_we_encode_aioquic_parses(params):
    theirs = aio_parse(encode_transport_parameters(params))
    expected = to_aio(without_grease_bit(params))
    # We omit parameters equal to their defaults; aioquic then leaves them None.
    defaults = QuicTransportParameters()
    for name in QuicTransportParameters.__dataclass_fields__:
        if name == "grease_quic_bit":
            continue
        value, got = getattr(expected, name), getattr(theirs, name)
        if got is None or (got is False and value is False):
            assert value in (None, False, getattr(defaults, name)), name
        else:
            assert got == value, name


def test_aioquic_client_defaults_parse():
    # What aioquic's client actually sends by default (connection.py fills these).
    params = aio.QuicTransportParameters(
        initial_source_connection_id=b"\x01" * 8,
        max_idle_timeout=60000,
        initial_max_data=1048576,
        initial_max_stream_data_bidi_local=1048576,
        initial_max_stream_data_bidi_remote=1048576,
        initial_max_stream_data_uni=1048576,
        initial_max_streams_bidi=128,
        initial_max_streams_uni=128,
        ack_delay_exponent=3,
        active_connection_id_limit=8,
        max_ack_delay=25,
        max_datagram_frame_size=None,
        quantum_readiness=None,
        version_information=aio.QuicVersionInformation(QUIC_V1, [QUIC_V1, QUIC_V2]),
    )
    ours = parse_transport_parameters(aio_encode(params), from_server=False)
    assert ours.initial_max_streams_bidi == 128 and ours.active_connection_id_limit == 8
    assert ours.version_information == VersionInformation(QUIC_V1, (QUIC_V1, QUIC_V2))
