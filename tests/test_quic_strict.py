# Strict readings of RFC 9000/9001/9002/9221/9368 that an outside review
# found the connection missing, each on the simulated clock of
# tests/quic_pair.py:
#   - one receive pipeline: a 1-RTT packet opened with the current key but
#     carrying the other key phase bit is KEY_UPDATE_ERROR whether it fills
#     the datagram (fast path) or follows a long-header packet (general path);
#   - a DATAGRAM frame exactly at max_datagram_frame_size (type and length
#     counted as sent) is accepted, one byte more is PROTOCOL_VIOLATION;
#   - stateless reset tokens: only the peer's ID in use and IDs we used
#     until their retirement is acknowledged;
#   - a client that reacted to Version Negotiation closes with
#     VERSION_NEGOTIATION_ERROR when the server's version_information is
#     missing;
#   - CONNECTION_CLOSE to an unvalidated address stays within 3x what it sent;
#   - a PTO probe carries an ACK frame when there is anything to acknowledge,
#     so a peer whose ACKs died in a blackhole learns what arrived.
from __future__ import annotations

import pytest

from pyquic import events
from pyquic.buffer import encode_varint
from pyquic.connection import QuicConnectionState
from pyquic.connection_ids import PeerConnectionIds
from pyquic.errors import ErrorCode, TransportError
from pyquic.frames import Datagram, FrameType, NewConnectionId, Ping, encode_frame
from pyquic.packet import PacketType, encode_long_header
from pyquic.sent_records import K_ACK
from pyquic.transport_params import QuicTransportParameters
from pyquic.versions import QUIC_V1, QUIC_V2
from tests.quic_pair import (
    CLIENT_ADDR,
    Pair,
    client_configuration,
    craft_short_packet,
    server_configuration,
)

APPLICATION = 2


def established(**kwargs) -> Pair:
    pair = Pair(**kwargs)
    pair.handshake()
    pair.drive()
    return pair


def close_code(conn):
    assert conn.state >= QuicConnectionState.CLOSING, "the connection did not close"
    return conn._end.event.error_code


# -- one receive pipeline ---------------------------------------------------------------------


def flipped_phase_packet(pair: Pair) -> bytes:
    # Protected with the client's current key, key phase bit set to the other phase.
    return craft_short_packet(pair.client, encode_frame(Ping()), first_byte_bits=0x04)


def test_flipped_key_phase_alone_in_its_datagram_is_key_update_error():
    pair = established()
    pair.server.receive_datagram(flipped_phase_packet(pair), CLIENT_ADDR, now=pair.now)
    assert close_code(pair.server) == ErrorCode.KEY_UPDATE_ERROR


def test_flipped_key_phase_after_a_long_header_packet_is_key_update_error():
    pair = established()
    # A Handshake packet first (its keys are gone: dropped), so the datagram
    # takes the general path over coalesced packets.
    body = bytes(24)
    head = encode_long_header(QUIC_V1, PacketType.HANDSHAKE, pair.client.peer_cid, pair.client.host_cid, 0, 4,
                              payload_length=len(body) + 16)
    datagram = head + body + bytes(16) + flipped_phase_packet(pair)
    pair.server.receive_datagram(datagram, CLIENT_ADDR, now=pair.now)
    assert close_code(pair.server) == ErrorCode.KEY_UPDATE_ERROR


# -- DATAGRAM at the limit --------------------------------------------------------------------


LIMIT = 100


def datagram_frame(size: int, with_length: bool) -> bytes:
    """A DATAGRAM frame of exactly `size` bytes on the wire."""
    if with_length:
        n = size - 1 - 2  # 64..16383 bytes take a 2-byte length
        return bytes((FrameType.DATAGRAM_LEN,)) + encode_varint(n) + bytes(n)
    return bytes((FrameType.DATAGRAM,)) + bytes(size - 1)


@pytest.mark.parametrize("with_length", [True, False])
def test_datagram_frame_exactly_at_the_limit_is_accepted(with_length):
    pair = established(server_config=server_configuration(max_datagram_frame_size=LIMIT))
    frame = datagram_frame(LIMIT, with_length)
    assert len(frame) == LIMIT
    pair.server.receive_datagram(craft_short_packet(pair.client, frame), CLIENT_ADDR, now=pair.now)
    assert pair.server.state == QuicConnectionState.CONNECTED
    got = [e for e in iter(pair.server.next_event, None) if isinstance(e, events.DatagramFrameReceived)]
    assert len(got) == 1 and Datagram(got[0].data, with_length).size == LIMIT


@pytest.mark.parametrize("with_length", [True, False])
def test_datagram_frame_one_byte_over_the_limit_is_protocol_violation(with_length):
    pair = established(server_config=server_configuration(max_datagram_frame_size=LIMIT))
    pair.server.receive_datagram(craft_short_packet(pair.client, datagram_frame(LIMIT + 1, with_length)),
                                 CLIENT_ADDR, now=pair.now)
    assert close_code(pair.server) == ErrorCode.PROTOCOL_VIOLATION


def test_we_send_a_datagram_frame_exactly_at_the_peers_limit():
    pair = established(server_config=server_configuration(max_datagram_frame_size=LIMIT))
    pair.client.send_datagram_frame(bytes(LIMIT - 3))  # type + 2-byte length + 97 bytes = LIMIT
    pair.drive()
    assert [len(e.data) for e in pair.events_of("server", events.DatagramFrameReceived)] == [LIMIT - 3]
    with pytest.raises(Exception, match="too large"):
        pair.client.send_datagram_frame(bytes(LIMIT - 2))


# -- stateless reset tokens -------------------------------------------------------------------


def token(n: int) -> bytes:
    return bytes([n]) * 16


def reset_datagram(t: bytes) -> bytes:
    return bytes([0x40]) + bytes(20) + t


def test_only_tokens_of_ids_in_use_or_recently_used_identify_a_reset():
    ids = PeerConnectionIds(b"\x01" * 8, limit=4)
    ids.set_active_token(token(0))
    ids.on_new_connection_id(NewConnectionId(1, 0, b"\x02" * 8, token(1)))
    ids.on_new_connection_id(NewConnectionId(2, 0, b"\x03" * 8, token(2)))
    assert ids.is_stateless_reset(reset_datagram(token(0)))
    # A spare the peer issued but we never used is not a reset.
    assert not ids.is_stateless_reset(reset_datagram(token(1)))
    assert not ids.is_stateless_reset(reset_datagram(token(2)))
    ids.change()  # to sequence 1; sequence 0 retired
    assert ids.is_stateless_reset(reset_datagram(token(1)))
    # Recently used: until the peer acknowledges its retirement.
    assert ids.is_stateless_reset(reset_datagram(token(0)))
    (retire,) = ids.take_frames()
    ids.on_retire_acked(retire.sequence_number)
    assert not ids.is_stateless_reset(reset_datagram(token(0)))
    # A spare retired by retire_prior_to without ever being used never counts.
    ids.on_new_connection_id(NewConnectionId(3, 3, b"\x04" * 8, token(3)))
    assert ids.is_stateless_reset(reset_datagram(token(3)))
    assert not ids.is_stateless_reset(reset_datagram(token(2)))


# -- version downgrade --------------------------------------------------------------------------


def test_missing_version_information_after_version_negotiation_is_an_error():
    client = Pair(client_config=client_configuration(supported_versions=[QUIC_V2, QUIC_V1],
                                                     original_version=QUIC_V2)).client
    client._versions.on_version_negotiation([QUIC_V1])  # the client reacted to Version Negotiation ...
    client._peer_initial_scid = b"\x05" * 8
    params = QuicTransportParameters(  # ... and the server's parameters have no version_information
        original_destination_connection_id=client.original_destination_connection_id,
        initial_source_connection_id=b"\x05" * 8,
    )
    with pytest.raises(TransportError) as info:
        client._on_peer_transport_parameters(params.encode())
    assert info.value.code == ErrorCode.VERSION_NEGOTIATION_ERROR


# -- closing within the anti-amplification limit ---------------------------------------------------


def test_connection_close_to_an_unvalidated_address_respects_three_times():
    pair = Pair()
    pair.connect()
    (initial, _), *_ = pair.client.datagrams_to_send(now=pair.now)
    pair._deliver("server", initial)
    server = pair.server
    server.datagrams_to_send(now=pair.now)  # its first flight
    server.close(error_code=1, frame_type=0, reason_phrase="x" * 1000)  # a transport close keeps its reason
    for _ in range(300):
        # Tiny junk from the unvalidated address draws closes at a decreasing rate ...
        server.datagrams_to_send(now=pair.now)
        server.receive_datagram(b"\x00", CLIENT_ADDR, now=pair.now)
    server.datagrams_to_send(now=pair.now)
    # ... never beyond three times what it received (RFC 9000 §8.1).
    assert not server._path.validated
    assert server._path.sent <= 3 * server._path.received


# -- probes carry an ACK ----------------------------------------------------------------------


def test_a_probe_after_a_blackhole_carries_an_ack():
    pair = established()
    server_sid = pair.server.get_next_available_stream_id()
    pair.server.send_stream_data(server_sid, b"d" * 3000, end_stream=True)
    start = pair.now
    # The client's ACK of that data dies; from one RTT on, both ways are dark.
    pair.client_to_server.blackhole = (start, start + 3.0)
    pair.server_to_client.blackhole = (start + 0.1, start + 3.0)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"request", end_stream=False)  # something for the client to probe
    assert pair.drive_until(lambda: pair.received("client", server_sid) == b"d" * 3000, duration=1)
    after: list = []

    def probe_after_the_hole() -> bool:
        after.extend(p for p in pair.client.loss.sent_packets(APPLICATION)
                     if p.time_sent >= start + 3.0 and p.ack_eliciting and p not in after)
        return bool(after)

    assert pair.drive_until(probe_after_the_hole, duration=30)
    assert any(record[0] == K_ACK for record in after[0].frames), after[0].frames
    pair.drive()
    assert pair.received("server", sid) == b"request"
