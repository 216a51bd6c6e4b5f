# Streams and everything else after the handshake, between two
# QuicConnections on the simulated clock: 1 and 100 concurrent streams, flow
# control with small windows (the MAX_* and *_BLOCKED frames seen in qlog),
# a multi-MB transfer byte for byte through loss, reordering, duplication
# and a 2-second blackhole, uni/bidi streams opened by either side,
# RESET_STREAM and STOP_SENDING, application close, key updates from both
# sides, connection ID rotation, stateless reset, DATAGRAM frames and PING.
import hashlib
import random

import pytest

from pyquic import events
from pyquic.connection import QuicConnectionState
from pyquic.endpoint import QuicEndpoint
from pyquic.errors import UsageError
from tests.quic_pair import Pair, client_configuration, seeded_entropy, server_configuration


class FrameLog:
    """A quic_logger that keeps the frame types each side sent."""

    def __init__(self):
        self.sent: list[str] = []

    def start(self, odcid_hex, vantage):
        log = self

        class Writer:
            def write(self, record):
                import json

                body = json.loads(record.lstrip("\x1e"))
                if body.get("name") == "transport:packet_sent":
                    log.sent.extend(f["frame_type"] for f in body["data"]["frames"])

            def close(self):
                pass

        return Writer()


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


def test_one_stream_each_way():
    pair = Pair()
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    assert sid == 0
    pair.client.send_stream_data(sid, b"request", end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"request"
    pair.server.send_stream_data(sid, b"response", end_stream=True)
    pair.drive()
    assert pair.received("client", sid) == b"response"
    ends = [e for e in pair.client_events if isinstance(e, events.StreamDataReceived) and e.end_stream]
    assert [e.stream_id for e in ends] == [0]


def test_hundred_concurrent_streams():
    pair = Pair()
    pair.handshake()
    bodies = {}
    for i in range(100):
        sid = pair.client.get_next_available_stream_id()
        bodies[sid] = payload(3000 + i, seed=i)
        pair.client.send_stream_data(sid, bodies[sid], end_stream=True)
    pair.drive()
    for sid, body in bodies.items():
        assert pair.received("server", sid) == body
    for sid, body in bodies.items():
        pair.server.send_stream_data(sid, body[::-1], end_stream=True)
    pair.drive()
    for sid, body in bodies.items():
        assert pair.received("client", sid) == body[::-1]


def test_small_windows_exercise_the_flow_control_frames():
    client_log, server_log = FrameLog(), FrameLog()
    pair = Pair(
        client_config=client_configuration(quic_logger=client_log, max_streams_bidi=4),
        server_config=server_configuration(
            quic_logger=server_log, max_data=8000, max_stream_data=4000, max_streams_bidi=2,
            max_data_window=8000, max_stream_data_window=4000,
        ),
    )
    pair.handshake()
    bodies = {}
    for i in range(6):  # more streams than the server allows at once
        sid = pair.client.get_next_available_stream_id()
        bodies[sid] = payload(20000, seed=i)
        pair.client.send_stream_data(sid, bodies[sid], end_stream=True)
    answered = set()
    for _ in range(20):
        pair.drive(duration=60)
        # A bidirectional stream closes (and its credit returns) once the server ends its side too.
        for e in pair.events_of("server", events.StreamDataReceived):
            if e.end_stream and e.stream_id not in answered:
                answered.add(e.stream_id)
                pair.server.send_stream_data(e.stream_id, b"ok", end_stream=True)
        if len(answered) == len(bodies):
            break
    for sid, body in bodies.items():
        assert pair.received("server", sid) == body
    assert {"data_blocked", "stream_data_blocked", "streams_blocked"} <= set(client_log.sent)
    assert {"max_data", "max_stream_data", "max_streams"} <= set(server_log.sent)


def test_multi_megabyte_transfer_through_loss_reordering_duplication_and_a_blackhole():
    pair = Pair(seed=11)
    pair.handshake()
    for link in (pair.client_to_server, pair.server_to_client):
        link.loss = 0.05
        link.reorder = 0.1
        link.reorder_delay = 0.03
        link.duplicate = 0.02
    start = pair.now
    pair.client_to_server.blackhole = (start + 0.3, start + 2.3)
    pair.server_to_client.blackhole = (start + 0.3, start + 2.3)
    body = payload(2_000_000, seed=5)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, body, end_stream=True)
    assert pair.drive_until(
        lambda: any(isinstance(e, events.StreamDataReceived) and e.end_stream for e in pair.server_events),
        duration=120,
    )
    got = pair.received("server", sid)
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    assert pair.client.stats.packets_lost > 0
    assert pair.server.stats.duplicates > 0
    assert pair.client.state == QuicConnectionState.CONNECTED


def test_streams_opened_by_either_side_uni_and_bidi():
    pair = Pair()
    pair.handshake()
    c, s = pair.client, pair.server
    cbidi, cuni = c.get_next_available_stream_id(), c.get_next_available_stream_id(True)
    sbidi, suni = s.get_next_available_stream_id(), s.get_next_available_stream_id(True)
    assert (cbidi, cuni, sbidi, suni) == (0, 2, 1, 3)
    c.send_stream_data(cbidi, b"c-bidi", end_stream=True)
    c.send_stream_data(cuni, b"c-uni", end_stream=True)
    s.send_stream_data(sbidi, b"s-bidi", end_stream=True)
    s.send_stream_data(suni, b"s-uni", end_stream=True)
    pair.drive()
    assert pair.received("server", cbidi) == b"c-bidi" and pair.received("server", cuni) == b"c-uni"
    assert pair.received("client", sbidi) == b"s-bidi" and pair.received("client", suni) == b"s-uni"
    c.send_stream_data(sbidi, b"answer", end_stream=True)
    pair.drive()
    assert pair.received("server", sbidi) == b"answer"
    with pytest.raises(UsageError):
        c.send_stream_data(suni, b"not mine")  # a receive-only stream


def test_reset_stream_and_stop_sending():
    pair = Pair()
    pair.handshake()
    c, s = pair.client, pair.server
    sid = c.get_next_available_stream_id()
    c.send_stream_data(sid, b"partial")
    pair.drive()
    c.reset_stream(sid, 0x55)
    pair.drive()
    assert pair.events_of("server", events.StreamReset) == [events.StreamReset(sid, 0x55)]
    sid2 = c.get_next_available_stream_id()
    c.send_stream_data(sid2, b"x" * 100)
    pair.drive()
    s.stop_sending(sid2, 0x66)
    pair.drive()
    assert pair.events_of("client", events.StopSendingReceived) == [events.StopSendingReceived(sid2, 0x66)]
    # RFC 9000 §3.5: the client answered with RESET_STREAM carrying the same code.
    assert events.StreamReset(sid2, 0x66) in pair.events_of("server", events.StreamReset)


def test_application_close_code_reaches_the_peer():
    pair = Pair()
    pair.handshake()
    pair.client.close(error_code=0x1234, reason_phrase="going away")
    pair.drive()
    assert pair.events_of("server", events.ConnectionTerminated) == [
        events.ConnectionTerminated(0x1234, None, "going away")
    ]
    assert pair.events_of("client", events.ConnectionTerminated) == [
        events.ConnectionTerminated(0x1234, None, "going away")
    ]
    assert pair.client.state == pair.server.state == QuicConnectionState.TERMINATED


def test_transport_close_with_frame_type():
    pair = Pair()
    pair.handshake()
    pair.server.close(error_code=0x0A, frame_type=0x08, reason_phrase="bad stream")
    pair.drive()
    assert pair.events_of("client", events.ConnectionTerminated) == [
        events.ConnectionTerminated(0x0A, 0x08, "bad stream")
    ]


@pytest.mark.parametrize("kwargs", [
    dict(error_code=1000.0),  # a float where the code goes (a clock value passed by position)
    dict(error_code=-1),
    dict(error_code=1 << 62),
    dict(error_code=1, frame_type="0x08"),
    dict(error_code=1, reason_phrase=b"bytes"),
])
def test_a_close_the_frame_cannot_carry_is_refused_at_the_call(kwargs):
    pair = Pair()
    pair.handshake()
    with pytest.raises(UsageError):
        pair.client.close(**kwargs)
    # Nothing was recorded: the connection is open and closes properly after.
    assert pair.client.state == QuicConnectionState.CONNECTED
    pair.client.close(error_code=7)
    pair.drive()
    assert pair.events_of("server", events.ConnectionTerminated) == [events.ConnectionTerminated(7, None, "")]


def test_closing_endpoint_repeats_connection_close_at_a_decreasing_rate():
    pair = Pair()
    pair.handshake()
    pair.server_to_client.drop_nth = set(range(pair.server_to_client.sent, pair.server_to_client.sent + 1000))
    pair.client.close(error_code=1)
    sid = pair.server.get_next_available_stream_id()
    for i in range(20):
        pair.server.send_stream_data(sid, b"x" * 1000)
        pair.drive(duration=0.02)
    sent_while_closing = [e for e in pair.log if e[1] == "client" and e[2] in ("sent", "lost")]
    assert 2 <= len(sent_while_closing) <= 8


@pytest.mark.parametrize("initiator", ["client", "server"])
def test_key_update(initiator):
    pair = Pair()
    pair.handshake()
    pair.drive()
    first, other = (pair.client, pair.server) if initiator == "client" else (pair.server, pair.client)
    first.request_key_update()
    assert first.key_phase == 1
    with pytest.raises(UsageError):
        first.request_key_update()  # RFC 9001 §6.1: not before the update is acknowledged
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"a" * 50000)
    pair.server.send_stream_data(1, b"b" * 50000, end_stream=True)
    pair.drive()
    assert other.key_phase == 1
    assert pair.received("server", sid) == b"a" * 50000 and pair.received("client", 1) == b"b" * 50000
    first.request_key_update()
    pair.client.send_stream_data(sid, b"c" * 10000, end_stream=True)
    pair.drive()
    assert first.key_phase == other.key_phase == 0
    assert pair.received("server", sid) == b"a" * 50000 + b"c" * 10000
    assert pair.client.stats.decryption_failures == pair.server.stats.decryption_failures == 0


def test_connection_id_rotation():
    pair = Pair()
    pair.handshake()
    pair.drive()
    before = pair.client.peer_cid
    pair.client.change_connection_id()
    assert pair.client.peer_cid != before
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"on a new cid", end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"on a new cid"
    retired = pair.events_of("server", events.ConnectionIdRetired)
    assert retired == [events.ConnectionIdRetired(pair.server.original_destination_connection_id)] or \
        [e.connection_id for e in retired] == [pair.server.host_cid]
    # The server replaced it: the client still holds spares (limit - 1 at the
    # handshake, then one more).
    limit = pair.server.configuration.active_connection_id_limit
    assert len(pair.events_of("server", events.ConnectionIdIssued)) == limit


def test_stateless_reset_ends_the_client():
    reset_key = b"k" * 32
    config = server_configuration()
    endpoint = QuicEndpoint(config, stateless_reset_key=reset_key, entropy=seeded_entropy(3))
    from tests.quic_pair import EndpointServer

    server = EndpointServer(endpoint)
    pair = Pair(server_config=config, server_factory=lambda odcid: server)
    pair.handshake()
    pair.drive()
    # The server restarts: a new endpoint with the same key, no connection.
    server.endpoint = QuicEndpoint(config, stateless_reset_key=reset_key, entropy=seeded_entropy(4))
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"anyone there?")
    pair.drive()
    assert server.endpoint.stats["stateless_reset"] >= 1
    closed = pair.events_of("client", events.ConnectionTerminated)
    assert closed and closed[0].reason_phrase == "stateless reset"


def test_datagram_frames():
    pair = Pair(
        client_config=client_configuration(max_datagram_frame_size=1500),
        server_config=server_configuration(max_datagram_frame_size=1500),
    )
    pair.handshake()
    pair.client.send_datagram_frame(b"unreliable")
    pair.drive()
    assert pair.events_of("server", events.DatagramFrameReceived) == [events.DatagramFrameReceived(b"unreliable")]


def test_datagram_frames_need_the_peer_to_accept_them():
    pair = Pair()
    pair.handshake()
    with pytest.raises(UsageError):
        pair.client.send_datagram_frame(b"nope")


def test_ping_is_acknowledged():
    pair = Pair()
    pair.handshake()
    pair.client.send_ping(77)
    pair.drive()
    assert pair.events_of("client", events.PingAcknowledged) == [events.PingAcknowledged(77)]


def test_ping_lost_is_resent():
    pair = Pair()
    pair.handshake()
    pair.drive()
    pair.client_to_server.drop_nth = {pair.client_to_server.sent}
    pair.client.send_ping(5)
    pair.drive()
    assert pair.events_of("client", events.PingAcknowledged) == [events.PingAcknowledged(5)]


def test_cubic_transfer():
    pair = Pair(
        client_config=client_configuration(congestion_control_algorithm="cubic"),
        server_config=server_configuration(congestion_control_algorithm="cubic"),
        seed=2,
    )
    pair.handshake()
    pair.client_to_server.loss = 0.02
    body = payload(500_000, seed=9)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, body, end_stream=True)
    pair.drive(duration=60)
    assert pair.received("server", sid) == body


def test_gso_batches_are_uniform():
    pair = Pair(client_config=client_configuration(max_datagram_size=1400, max_probe_datagram_size=0),
                server_config=server_configuration(max_datagram_size=1400, max_probe_datagram_size=0))
    pair.handshake()
    pair.drive()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"z" * 300_000, end_stream=True)
    batches = pair.client.datagram_batches_to_send(now=pair.now)
    assert batches
    for buffer, segment, _ in batches:
        assert segment <= 1400 and len(buffer) <= 65000
        count = -(-len(buffer) // segment)
        assert count <= 64
    assert max(len(b) // s for b, s, _ in batches) >= 9  # the initial window goes out in one batch
    assert batches[0][1] == 1400


def test_blocked_frames_go_out_in_the_build_that_hits_the_limit():
    pair = Pair(server_config=server_configuration(max_data=8000, max_stream_data=4000,
                                                   max_data_window=8000, max_stream_data_window=4000))
    pair.handshake()
    pair.drive()
    client = pair.client
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"b" * 20000)
    before = dict(client.stats.frames_sent)
    client.datagrams_to_send(now=pair.now)
    sent = client.stats.frames_sent
    assert sent.get("stream_data_blocked", 0) == before.get("stream_data_blocked", 0) + 1
    pair.drive()
    assert pair.server.stats.frames_received.get("stream_data_blocked", 0) >= 1
    assert pair.server.stats.frames_sent.get("max_stream_data", 0) >= 1


def test_without_auto_consume_credit_follows_the_application():
    pair = Pair(server_config=server_configuration(auto_consume=False, max_stream_data=10000,
                                                   max_stream_data_window=10000))
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"c" * 30000, end_stream=True)
    pair.drive()
    assert len(pair.received("server", sid)) == 10000  # the window, no more
    assert pair.client.stream_send_buffered(sid) == 20000  # written, not yet acknowledged
    assert pair.server.auto_consume is False
    pair.server.consume(sid, 10000)
    pair.drive()
    pair.server.consume(sid, len(pair.received("server", sid)) - 10000)
    pair.drive()
    assert pair.received("server", sid) == b"c" * 30000
    assert pair.client.stream_send_buffered(sid) == 0


def test_key_update_starts_by_itself_before_the_confidentiality_limit():
    pair = Pair()
    pair.handshake()
    pair.drive()
    kp = pair.client._one_rtt
    limit = kp.send.protection.confidentiality_limit
    kp.sent_with_key = limit - 10  # RFC 9001 §6.6: update well before the limit
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"k" * 5000, end_stream=True)
    pair.drive()
    assert pair.client.key_phase == 1 and pair.server.key_phase == 1
    assert pair.received("server", sid) == b"k" * 5000


def test_integrity_limit_closes_with_aead_limit_exceeded():
    from tests.quic_pair import CLIENT_ADDR, craft_short_packet

    pair = Pair()
    pair.handshake()
    pair.drive()
    kp = pair.server._one_rtt
    kp.failures = kp.recv.protection.integrity_limit - 1
    forged = bytearray(craft_short_packet(pair.client, b"\x01"))
    forged[-1] ^= 1
    pair.server.receive_datagram(bytes(forged), CLIENT_ADDR, now=pair.now)
    assert pair.server._end.event.error_code == 0x0F  # AEAD_LIMIT_EXCEEDED
    pair.drive()
    assert pair.events_of("client", events.ConnectionTerminated)[0].error_code == 0x0F


def test_received_datagram_frames_are_capped_when_the_application_lags():
    pair = Pair(
        client_config=client_configuration(max_datagram_frame_size=1500),
        server_config=server_configuration(max_datagram_frame_size=1500, max_datagrams_received=3),
    )
    pair.handshake()
    for i in range(6):
        pair.client.send_datagram_frame(b"d%d" % i)
    pair.drive()
    assert len(pair.events_of("server", events.DatagramFrameReceived)) == 3
