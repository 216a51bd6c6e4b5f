# Loss recovery in a running connection (RFC 9002: packet- and time-
# threshold loss, PTO probes, retransmission of lost frames), and every peer
# violation closing with its RFC 9000 §20 code: malformed and misplaced
# frames, stream state, flow control and stream limits, CRYPTO overflow and
# CRYPTO at a level the handshake has left (RFC 9001 §4.1.3), connection ID
# rules, ACKs of packets never sent.  Then hypothesis fuzzing of
# receive_datagram -- random datagrams, mutated real ones, and random
# plaintext inside correctly protected packets: never an exception, never
# INTERNAL_ERROR (the tests run with RAISE_INTERNAL_ERRORS set).
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyquic import events
from pyquic.buffer import encode_varint
from pyquic.connection import QuicConnection, QuicConnectionState
from pyquic.errors import ErrorCode
from pyquic.packet import PacketType, split_datagram
from pyquic.frames import (
    Ack,
    Crypto,
    Datagram,
    HandshakeDone,
    MaxStreams,
    NewConnectionId,
    RetireConnectionId,
    Stream,
    encode_frame,
)
from tests.quic_pair import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Pair,
    client_configuration,
    craft_long_packet,
    craft_short_packet,
    seeded_entropy,
    server_configuration,
)


def established(**kwargs):
    pair = Pair(**kwargs)
    pair.handshake()
    pair.drive()
    return pair


def inject(pair, to, datagram):
    receiver = pair.server if to == "server" else pair.client
    addr = CLIENT_ADDR if to == "server" else SERVER_ADDR
    receiver.receive_datagram(datagram, addr, now=pair.now)
    return receiver


def close_code(conn):
    assert conn.state >= QuicConnectionState.CLOSING, "the connection did not close"
    return conn._end.event.error_code, conn._end.event.frame_type


# -- loss recovery ------------------------------------------------------------------


def test_a_lost_datagram_is_retransmitted_by_packet_threshold():
    pair = established()
    sid = pair.client.get_next_available_stream_id()
    pair.client_to_server.drop_nth = {pair.client_to_server.sent + 2}
    body = random.Random(1).randbytes(40_000)
    pair.client.send_stream_data(sid, body, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == body
    assert pair.client.stats.packets_lost == 1


def test_tail_loss_is_repaired_by_a_pto_probe():
    pair = established()
    sid = pair.client.get_next_available_stream_id()
    start = pair.client_to_server.sent
    pair.client_to_server.drop_nth = {start}
    pair.client.send_stream_data(sid, b"only packet", end_stream=True)
    sent_at = pair.now
    pto = pair.client.loss.rtt.pto_base() + pair.client.loss.max_ack_delay
    pair.drive()
    assert pair.received("server", sid) == b"only packet"
    retransmission = [e for e in pair.log if e[1] == "client" and e[2] == "sent" and e[3] == start + 1][0]
    # RFC 9002 §6.2.1: the probe goes one PTO after the last ack-eliciting packet.
    assert retransmission[0] - sent_at == pytest.approx(pto, abs=1e-9)


def handshake_with_first_server_datagram_lost(client_config=None, server_config=None):
    pair = Pair(client_config=client_config, server_config=server_config)
    # The server's Initials (its ServerHello, with an ML-KEM share, fills two);
    # the Handshake packet in its third datagram arrives.
    pair.server_to_client.drop_nth = {0, 1}
    pair.connect()
    assert pair.drive_until(lambda: pair.client.handshake_complete and pair.server.handshake_complete)
    return pair


def test_a_lost_server_initial_is_resent_before_either_pto():
    # RFC 9002 §6.2.3: the client, handed Handshake packets it has no keys
    # for, sends its ClientHello again at once; the server, hearing the
    # client's Initial again, resends its own Initial at once. Both PTOs
    # (about 1 s with the initial RTT of 333 ms) are still far away.
    pair = handshake_with_first_server_datagram_lost()
    # 2.5 round trips of 100 ms: the flight that lost its Initial, the
    # ClientHello again and the Initial again, the client's Finished.
    assert pair.now == pytest.approx(0.25)
    assert pair.client.stats.crypto_resent_early == 1 and pair.server.stats.crypto_resent_early == 1
    assert pair.server_to_client.dropped == 2


def test_without_early_resends_the_lost_server_initial_waits_for_a_pto(monkeypatch):
    monkeypatch.setattr("pyquic.connection.EARLY_CRYPTO_RESENDS", 0)
    pair = handshake_with_first_server_datagram_lost()
    assert pair.now > 1.0


def test_early_crypto_resends_are_limited_per_connection():
    # Every server datagram that starts with an Initial is lost, so the
    # client keeps getting Handshake packets it has no keys for and the
    # server keeps hearing the ClientHello: three early resends each, then
    # only their PTOs.
    pair = Pair()
    pair.server_to_client.drop_if = lambda data: data[0] & 0xF0 == 0xC0  # long header, v1 Initial
    pair.connect()
    pair.drive(duration=8.0)
    assert not pair.client.handshake_complete
    assert pair.client.stats.crypto_resent_early == 3 and pair.server.stats.crypto_resent_early == 3


def test_a_handshake_probe_also_probes_in_1rtt_so_the_handshake_gets_confirmed():
    # The server has the client's Finished and has dropped its Handshake keys;
    # its 1-RTT packets (HANDSHAKE_DONE, its ACKs) are lost for 2.15 s. The
    # client's Handshake PTO probes alone would get no answer (the server
    # drops them) and the client would wait for the server's own backed-off
    # PTO (at 4.175 s). RFC 9002 §6.2.4: the other spaces with data in flight
    # are probed too; the server acknowledges the 1-RTT PING, and that ACK
    # confirms the handshake (RFC 9001 §4.1.2) right after the blackhole.
    pair = Pair()
    pair.connect()
    assert pair.drive_until(lambda: pair.client.handshake_complete)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"request", end_stream=True)
    start = pair.now
    pair.server_to_client.blackhole = (start, start + 2.15)
    kinds = []
    transmit = pair._transmit

    def record(who, link, data, addr=None, codepoint=0):
        if who == "client":
            kinds.append((round(pair.now - start, 3), [h.packet_type for h, _ in split_datagram(data, 8)[0]]))
        transmit(who, link, data, addr, codepoint)

    pair._transmit = record
    assert pair.drive_until(lambda: pair.client.handshake_confirmed, duration=10)
    probes = [(t, k) for t, k in kinds if t > 0 and PacketType.HANDSHAKE in k]
    assert [t for t, _ in probes[::2]] == [0.3, 0.9, 2.1]  # the PTO, doubling
    assert all(PacketType.ONE_RTT in k for _, k in probes[::2])  # the first datagram of each probe
    # The probe at 2.1 s arrives at 2.15 s, its ACK (after max_ack_delay) at 2.225 s.
    assert pair.now - start == pytest.approx(2.225)


def test_blackhole_longer_than_the_idle_timeout_ends_the_connection():
    pair = Pair(client_config=client_configuration(idle_timeout=3.0),
                server_config=server_configuration(idle_timeout=3.0))
    pair.handshake()
    assert pair.drive_until(lambda: pair.client.handshake_confirmed)  # else the handshake timeout ends it
    pair.client_to_server.blackhole = (pair.now, pair.now + 100)
    pair.server_to_client.blackhole = (pair.now, pair.now + 100)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"x" * 10000)
    pair.drive(duration=30, quiet_gap=100)
    assert pair.client.state == QuicConnectionState.TERMINATED
    assert pair.events_of("client", events.ConnectionTerminated)[0].reason_phrase == "Idle timeout"


def test_acknowledged_data_is_not_resent_after_a_spurious_probe():
    pair = established()
    pair.server_to_client.reorder = 1.0
    pair.server_to_client.reorder_delay = 0.5  # ACKs come very late: probes fire first
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"y" * 20000, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"y" * 20000
    assert pair.client.loss.bytes_in_flight == 0


# -- peer violations -------------------------------------------------------------------


def test_stream_frame_on_a_send_only_stream_is_stream_state_error():
    pair = established()
    # Stream 3 is the server's unidirectional stream: the client cannot send on it.
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Stream(3, 0, b"x", False))))
    assert close_code(pair.server) == (ErrorCode.STREAM_STATE_ERROR, 0x08)


def test_crypto_beyond_the_buffer_is_crypto_buffer_exceeded():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Crypto(1_000_000, b"z" * 10))))
    assert close_code(pair.server) == (ErrorCode.CRYPTO_BUFFER_EXCEEDED, 0x06)


def test_ack_of_a_packet_never_sent_is_protocol_violation():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Ack(((0, 10_000),)))))
    assert close_code(pair.server) == (ErrorCode.PROTOCOL_VIOLATION, 0x02)


def test_handshake_done_from_a_client_is_protocol_violation():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(HandshakeDone())))
    assert close_code(pair.server) == (ErrorCode.PROTOCOL_VIOLATION, 0x1E)


def test_stream_frame_in_an_initial_packet_is_protocol_violation():
    client = QuicConnection(configuration=client_configuration(), entropy=seeded_entropy(30))
    client.connect(SERVER_ADDR, now=0.0)
    payload = encode_frame(Stream(0, 0, b"early", False)) + bytes(1200)
    datagram = craft_long_packet(client, 0, payload)
    server = QuicConnection(configuration=server_configuration(), entropy=seeded_entropy(31),
                            original_destination_connection_id=client.original_destination_connection_id)
    server.receive_datagram(datagram, CLIENT_ADDR, now=0.0)
    assert close_code(server) == (ErrorCode.PROTOCOL_VIOLATION, 0x0A)  # STREAM with LEN
    # The close goes out in an Initial packet, padded, within the 3x budget.
    out = server.datagrams_to_send(now=0.0)
    assert out and len(out[0][0]) <= 3 * len(datagram)
    client.receive_datagram(out[0][0], SERVER_ADDR, now=0.05)
    assert client.state == QuicConnectionState.DRAINING
    assert client._end.event.error_code == ErrorCode.PROTOCOL_VIOLATION


def test_new_crypto_data_at_a_level_the_handshake_left_is_protocol_violation():
    pair = Pair()
    pair.connect()
    pair.drive_until(lambda: pair.client.handshake_complete)
    # The client has moved on to 1-RTT; new Initial CRYPTO bytes from the server are illegal.
    offset = pair.client._spaces[0].crypto_recv.read_offset
    datagram = craft_long_packet(pair.server, 0, encode_frame(Crypto(offset, b"\x08\x00\x00\x00")))
    inject(pair, "client", datagram + bytes(1200 - len(datagram)))
    assert close_code(pair.client) == (ErrorCode.PROTOCOL_VIOLATION, 0x06)


def test_unknown_frame_type_is_frame_encoding_error():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, b"\x21\x00\x00\x00"))
    assert close_code(pair.server)[0] == ErrorCode.FRAME_ENCODING_ERROR


def test_truncated_frame_is_frame_encoding_error():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, b"\x01" * 3 + b"\x11\x44"))
    assert close_code(pair.server)[0] == ErrorCode.FRAME_ENCODING_ERROR


def test_reserved_bits_set_is_protocol_violation():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, b"\x01", first_byte_bits=0x18))
    assert close_code(pair.server)[0] == ErrorCode.PROTOCOL_VIOLATION


def test_flow_control_violation():
    pair = established(server_config=server_configuration(max_stream_data=1000, max_stream_data_window=1000))
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Stream(0, 0, b"x" * 1001, False))))
    assert close_code(pair.server)[0] == ErrorCode.FLOW_CONTROL_ERROR


def test_stream_limit_violation():
    pair = established(server_config=server_configuration(max_streams_bidi=4))
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Stream(4 * 4, 0, b"x", False))))
    assert close_code(pair.server)[0] == ErrorCode.STREAM_LIMIT_ERROR


def test_max_streams_above_2_60_is_frame_encoding_error():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, b"\x12" + encode_varint((1 << 60) + 1)))
    assert close_code(pair.server)[0] == ErrorCode.FRAME_ENCODING_ERROR
    assert MaxStreams.TYPE == 0x12


def test_too_many_connection_ids_is_connection_id_limit_error():
    pair = established()
    frames = b"".join(
        encode_frame(NewConnectionId(100 + i, 0, bytes([i + 1]) * 8, bytes([i]) * 16)) for i in range(8)
    )
    inject(pair, "server", craft_short_packet(pair.client, frames))
    assert close_code(pair.server) == (ErrorCode.CONNECTION_ID_LIMIT_ERROR, 0x18)


def test_retiring_a_connection_id_never_issued_is_protocol_violation():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(RetireConnectionId(500))))
    assert close_code(pair.server) == (ErrorCode.PROTOCOL_VIOLATION, 0x19)


def test_retiring_the_connection_id_in_use_is_protocol_violation():
    pair = established()
    in_use = pair.client.peer_cid
    sequence = pair.server._local_cids.by_cid[in_use].sequence
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(RetireConnectionId(sequence))))
    assert close_code(pair.server) == (ErrorCode.PROTOCOL_VIOLATION, 0x19)


def test_datagram_frame_not_negotiated_is_protocol_violation():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Datagram(b"dgram"))))
    assert close_code(pair.server)[0] == ErrorCode.PROTOCOL_VIOLATION


def test_violation_close_reaches_the_peer_with_code_and_frame_type():
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, encode_frame(Stream(3, 0, b"x", False))))
    pair.drive()
    closed = pair.events_of("client", events.ConnectionTerminated)
    assert closed[0].error_code == ErrorCode.STREAM_STATE_ERROR and closed[0].frame_type == 0x08
    assert "send-only" in closed[0].reason_phrase


def test_packets_that_fail_to_decrypt_are_counted_and_dropped():
    pair = established()
    datagram = bytearray(craft_short_packet(pair.client, b"\x01"))
    datagram[-1] ^= 0xFF
    before = pair.server.stats.decryption_failures
    inject(pair, "server", bytes(datagram))
    assert pair.server.stats.decryption_failures == before + 1
    assert pair.server.state == QuicConnectionState.CONNECTED


def test_packets_for_unknown_cids_are_dropped():
    pair = established()
    packet = bytearray(craft_short_packet(pair.client, b"\x01"))
    packet[1] ^= 0xFF
    inject(pair, "server", bytes(packet))
    assert pair.server.state == QuicConnectionState.CONNECTED
    assert pair.server.stats.packets_dropped >= 1


# -- fuzzing -------------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_pair():
    pair = established()
    return pair


def _not_internal(conn):
    # Only our own closes count (a peer may close with any code, 1 included).
    frame = conn._end.frame
    if frame is not None and not frame.application:
        assert frame.error_code != ErrorCode.INTERNAL_ERROR, conn._end.event


@FUZZ
@given(st.binary(min_size=0, max_size=1500))
def test_random_datagrams_never_raise(data):
    pair = established_cached()
    for conn in (pair.server, pair.client):
        conn.receive_datagram(data, CLIENT_ADDR, now=pair.now)
        _not_internal(conn)


_CACHE = {}


def established_cached():
    # A fresh established pair per example is slow; the connections are cheap to copy by replaying.
    pair = _CACHE.get("pair")
    if pair is None or pair.server.state != QuicConnectionState.CONNECTED or pair.client.state != QuicConnectionState.CONNECTED:
        pair = _CACHE["pair"] = established()
    return pair


@FUZZ
@given(st.binary(min_size=1, max_size=300))
def test_random_plaintext_in_protected_packets_never_raises(payload):
    pair = established()
    inject(pair, "server", craft_short_packet(pair.client, payload))
    _not_internal(pair.server)
    pair.drive(duration=1)
    _not_internal(pair.client)
    _not_internal(pair.server)


FRAME_BYTES = st.sampled_from([
    encode_frame(Stream(0, 0, b"abc", False)),
    encode_frame(Stream(0, 5, b"def", True)),
    encode_frame(Stream(2, 0, b"uni", True)),
    encode_frame(Stream(1, 0, b"x", False)),
    encode_frame(Ack(((0, 3),))),
    encode_frame(Crypto(0, b"\x04\x00\x00\x01\x00")),
    b"\x01", b"\x00\x00", b"\x1e", b"\x10\x40\x10", b"\x11\x00\x40\x10", b"\x12\x05", b"\x13\x05",
    b"\x14\x05", b"\x15\x00\x05", b"\x16\x05", b"\x04\x00\x01\x00", b"\x05\x00\x01", b"\x07\x01\x41",
    b"\x19\x01", b"\x1a" + bytes(8), b"\x1b" + bytes(8), b"\x1c\x01\x00\x00", b"\x1d\x01\x00",
    encode_frame(NewConnectionId(9, 0, b"\x09" * 8, b"\x09" * 16)),
])


@FUZZ
@given(st.lists(FRAME_BYTES, min_size=1, max_size=8), st.integers(0, 3))
def test_random_frame_sequences_never_raise(frames, mutate):
    pair = established()
    body = bytearray(b"".join(frames))
    rng = random.Random(len(body) * 31 + mutate)
    for _ in range(mutate):
        body[rng.randrange(len(body))] = rng.randrange(256)
    inject(pair, "server", craft_short_packet(pair.client, bytes(body)))
    _not_internal(pair.server)
    pair.drive(duration=2)
    _not_internal(pair.client)


@FUZZ
@given(st.integers(0, 2399), st.integers(1, 255), st.integers(0, 1))
def test_mutated_handshake_datagrams_never_raise(position, xor, which):
    client = QuicConnection(configuration=client_configuration(), entropy=seeded_entropy(30))
    client.connect(SERVER_ADDR, now=0.0)
    datagrams = [d for d, _ in client.datagrams_to_send(now=0.0)]
    data = bytearray(datagrams[which])
    data[position % len(data)] ^= xor
    server = QuicConnection(configuration=server_configuration(), entropy=seeded_entropy(31),
                            original_destination_connection_id=client.original_destination_connection_id)
    server.receive_datagram(bytes(data), CLIENT_ADDR, now=0.0)
    _not_internal(server)
    for out, _ in server.datagrams_to_send(now=0.0):
        client.receive_datagram(out, SERVER_ADDR, now=0.05)
        _not_internal(client)
