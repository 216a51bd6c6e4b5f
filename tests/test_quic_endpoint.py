# QuicEndpoint, the sans-I/O server side: routing by connection ID (the
# client's original DCID and every CID the connection issues, until it
# terminates), accepting only full-sized Initials with long enough DCIDs,
# Version Negotiation, Retry tokens (AEAD-sealed, bound to the address,
# expiring), stateless resets with the RFC 9000 §10.3 size rules, timers.
import pytest

from pyquic import events
from pyquic.connection import QuicConnection, QuicConnectionState
from pyquic.connection_ids import stateless_reset_token
from pyquic.endpoint import QuicEndpoint, RetryTokens
from pyquic.packet import PacketType, decode_header, split_datagram
from pyquic.versions import QUIC_V1, QUIC_V2
from tests.quic_pair import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Pair,
    client_configuration,
    endpoint_pair,
    seeded_entropy,
    server_configuration,
)


def first_flight(config=None):
    client = QuicConnection(configuration=config or client_configuration(), entropy=seeded_entropy(5))
    client.connect(SERVER_ADDR, now=0.0)
    return client, [d for d, _ in client.datagrams_to_send(now=0.0)]


def make_endpoint(**kwargs):
    return QuicEndpoint(server_configuration(), entropy=seeded_entropy(9), **kwargs)


def test_accepts_a_client_and_routes_by_every_cid():
    pair, endpoint = endpoint_pair()
    pair.handshake()
    pair.drive()
    conn = endpoint.connections[0]
    assert endpoint.accept() is conn and endpoint.accept() is None
    routed = {cid for cid, c in endpoint._routes.items() if c is conn}
    assert conn.original_destination_connection_id in routed
    assert set(conn.host_cids) <= routed and len(conn.host_cids) == 8
    # After the client moves to another CID, data still arrives.
    pair.client.change_connection_id()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"via another cid", end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"via another cid"
    # The retired CID is no longer routed; its replacement is.
    retired = [e.connection_id for e in pair.server_events if isinstance(e, events.ConnectionIdRetired)]
    assert retired and all(cid not in endpoint._routes for cid in retired)
    assert set(conn.host_cids) <= set(endpoint._routes)


def test_two_clients_on_one_endpoint():
    endpoint = make_endpoint()
    clients = [QuicConnection(configuration=client_configuration(), entropy=seeded_entropy(i)) for i in (1, 2)]
    now = 0.0
    for client in clients:
        client.connect(SERVER_ADDR, now=now)
    addrs = [("10.0.0.1", 1000), ("10.0.0.3", 2000)]
    for _ in range(20):
        for client, addr in zip(clients, addrs):
            for data, _ in client.datagrams_to_send(now=now):
                endpoint.receive_datagram(data, addr, now)
        for data, addr in endpoint.datagrams_to_send(now):
            clients[addrs.index(addr)].receive_datagram(data, SERVER_ADDR, now=now)
        now += 0.01
    assert all(c.handshake_complete for c in clients)
    assert len(endpoint.connections) == 2
    for i, client in enumerate(clients):
        client.send_stream_data(0, f"client {i}".encode(), end_stream=True)
    for _ in range(5):
        for client, addr in zip(clients, addrs):
            for data, _ in client.datagrams_to_send(now=now):
                endpoint.receive_datagram(data, addr, now)
        now += 0.01
    for i, conn in enumerate(endpoint.connections):
        got = []
        while (e := conn.next_event()) is not None:
            if isinstance(e, events.StreamDataReceived):
                got.append(e.data)
        assert got == [f"client {i}".encode()]


def test_small_initial_datagrams_and_short_dcids_are_dropped():
    endpoint = make_endpoint()
    _, flight = first_flight()
    assert endpoint.receive_datagram(flight[0][:1199], CLIENT_ADDR, 0.0) is None
    assert endpoint.connections == [] and endpoint.stateless_datagrams() == []
    # A 7-byte DCID (RFC 9000 §7.2: clients use at least 8).
    header = decode_header(flight[0], 0, short_dcid_length=8)
    assert len(header.destination_cid) == 8
    mangled = bytearray(flight[0])
    mangled[5] = 7
    assert endpoint.receive_datagram(bytes(mangled), CLIENT_ADDR, 0.0) is None
    assert endpoint.connections == []


def test_version_negotiation_for_unknown_versions():
    endpoint = make_endpoint()
    _, flight = first_flight()
    datagram = bytearray(flight[0])
    datagram[1:5] = (0x1A2A3A4A).to_bytes(4, "big")
    assert endpoint.receive_datagram(bytes(datagram), CLIENT_ADDR, 0.0) is None
    (reply, addr), = endpoint.stateless_datagrams()
    assert addr == CLIENT_ADDR
    header = decode_header(reply, 0, short_dcid_length=8)
    assert header.packet_type is PacketType.VERSION_NEGOTIATION
    sent = decode_header(flight[0], 0, short_dcid_length=8)
    # RFC 9000 §17.2.1: the client's CIDs, swapped.
    assert header.destination_cid == sent.source_cid and header.source_cid == sent.destination_cid
    assert QUIC_V1 in header.supported_versions and QUIC_V2 in header.supported_versions
    assert any(v & 0x0F0F0F0F == 0x0A0A0A0A for v in header.supported_versions)  # a GREASE version
    # Not for datagrams a client's Initial could not be (amplification).
    assert endpoint.receive_datagram(bytes(datagram[:600]), CLIENT_ADDR, 0.0) is None
    assert endpoint.stateless_datagrams() == []


def test_retry_tokens_are_bound_to_address_and_time():
    tokens = RetryTokens(b"k" * 16, seeded_entropy(1))
    token = tokens.seal(CLIENT_ADDR, b"odcid-12", b"rscid-12", now=100.0)
    assert tokens.open(token, CLIENT_ADDR, 105.0) == (b"odcid-12", b"rscid-12")
    assert tokens.open(token, ("10.9.9.9", 4433), 105.0) is None
    assert tokens.open(token, CLIENT_ADDR, 111.0) is None  # expired
    assert tokens.open(token[:-1] + bytes([token[-1] ^ 1]), CLIENT_ADDR, 105.0) is None
    assert tokens.open(b"short", CLIENT_ADDR, 105.0) is None


def test_retry_then_token_from_another_address_is_dropped():
    endpoint = make_endpoint(retry=True)
    client, flight = first_flight()
    endpoint.receive_datagram(flight[0], CLIENT_ADDR, 0.0)
    (retry, _), = endpoint.stateless_datagrams()
    assert decode_header(retry, 0, short_dcid_length=8).packet_type is PacketType.RETRY
    client.receive_datagram(retry, SERVER_ADDR, now=0.01)
    assert client._retry_received
    again = [d for d, _ in client.datagrams_to_send(now=0.01)]
    assert endpoint.receive_datagram(again[0], ("10.6.6.6", 1), 0.02) is None
    assert endpoint.connections == []
    conn = endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02)
    assert conn is not None and conn.original_destination_connection_id == client.original_destination_connection_id


def test_stateless_reset_size_rules():
    key = b"r" * 32
    endpoint = make_endpoint(stateless_reset_key=key)
    dcid = b"\x11" * 8
    for size, expected in ((21, None), (22, 21), (30, 29), (43, 42), (44, 43), (1200, 43)):
        packet = bytes([0x41]) + dcid + bytes(size - 9)
        endpoint.receive_datagram(packet, CLIENT_ADDR, 0.0)
        replies = endpoint.stateless_datagrams()
        if expected is None:
            assert replies == []
        else:
            (reply, _), = replies
            # RFC 9000 §10.3.3: always smaller than the packet that triggered it.
            assert len(reply) == expected < size
            assert reply[0] & 0xC0 == 0x40  # looks like a short header
            assert reply[-16:] == stateless_reset_token(key, dcid)


def test_reset_tokens_match_what_the_connection_advertised():
    key = b"q" * 32
    pair, endpoint = endpoint_pair(stateless_reset_key=key)
    pair.handshake()
    pair.drive()
    conn = endpoint.connections[0]
    for entry in conn._local_cids.by_sequence.values():
        assert entry.token == stateless_reset_token(key, entry.cid)
    # The client learned every one of them (transport parameter + NEW_CONNECTION_ID).
    assert pair.client._peer_cids.tokens >= {stateless_reset_token(key, c) for c in conn.host_cids} - {
        stateless_reset_token(key, pair.client.peer_cid)
    }


def test_packets_of_other_kinds_with_unknown_cids_are_dropped():
    endpoint = make_endpoint()
    client, flight = first_flight()
    # A Handshake-type long header for nobody.
    datagram = bytearray(flight[0])
    datagram[0] = (datagram[0] & 0xCF) | 0x20
    assert endpoint.receive_datagram(bytes(datagram), CLIENT_ADDR, 0.0) is None
    assert endpoint.stateless_datagrams() == [] and endpoint.stats["datagrams_dropped"] == 1
    assert endpoint.receive_datagram(b"", CLIENT_ADDR, 0.0) is None


def test_terminated_connections_are_forgotten_and_timers_collected():
    pair, endpoint = endpoint_pair(server_configuration(idle_timeout=2.0))
    pair.handshake()
    conn = endpoint.connections[0]
    assert endpoint.get_timer() == conn.get_timer()
    pair.drive(duration=10, quiet_gap=100)
    assert conn.state == QuicConnectionState.TERMINATED
    assert endpoint.connections == [] and endpoint._routes == {}
    assert endpoint.get_timer() is None


def test_endpoint_refuses_a_client_configuration():
    with pytest.raises(ValueError):
        QuicEndpoint(client_configuration())


def test_datagrams_split_by_the_endpoint_match_batches():
    pair, endpoint = endpoint_pair()
    pair.handshake()
    pair.drive()
    conn = endpoint.connections[0]
    conn.send_stream_data(1, b"q" * 20000, end_stream=True)
    batches = endpoint.datagram_batches_to_send(pair.now)
    assert batches and all(addr == CLIENT_ADDR for _, _, addr in batches)
    total = sum(len(b) for b, _, _ in batches)
    assert total == 12000  # the initial congestion window (RFC 9002 §7.2: 10 datagrams)
    assert split_datagram(batches[0][0][: batches[0][1]], 8).packets


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=1400), st.sampled_from([0x00, 0x40, 0x80, 0xC0, 0xF0]))
def test_random_datagrams_never_break_the_endpoint(data, first):
    endpoint = make_endpoint(retry=bool(first & 0x10))
    datagram = bytes([first | (data[0] & 0x0F if data else 0)]) + data
    if first & 0x80 and len(datagram) >= 5:
        datagram = datagram[:1] + (1).to_bytes(4, "big") + datagram[5:]  # a version we know
    endpoint.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    endpoint.datagrams_to_send(0.0)
    for conn in endpoint.connections:
        frame = conn._close_frame
        assert frame is None or frame.error_code != 1


def test_past_max_connections_a_client_is_refused_with_connection_refused():
    endpoint = make_endpoint(max_connections=1)
    first, flight = first_flight()
    assert endpoint.receive_datagram(flight[0], CLIENT_ADDR, 0.0) is not None
    # A second client finds the one slot taken.
    second = QuicConnection(configuration=client_configuration(), entropy=seeded_entropy(6))
    second.connect(SERVER_ADDR, now=0.0)
    sent = [d for d, _ in second.datagrams_to_send(now=0.0)]
    for datagram in sent:  # its ClientHello may span two Initials: each is answered
        assert endpoint.receive_datagram(datagram, ("127.0.0.1", 4444), 0.0) is None
    assert len(endpoint.connections) == 1 and endpoint.stats["refused"] == len(sent)
    replies = endpoint.stateless_datagrams()
    assert len(replies) == len(sent) and replies[0][1] == ("127.0.0.1", 4444)
    header = decode_header(replies[0][0], 0, short_dcid_length=8)
    assert header.packet_type is PacketType.INITIAL and len(replies[0][0]) < 1200
    second.receive_datagram(replies[0][0], SERVER_ADDR, now=0.01)
    assert second.state == QuicConnectionState.DRAINING  # then terminated when the period ends
    second.handle_timer(second.get_timer())
    terminated = [e for e in iter(second.next_event, None) if isinstance(e, events.ConnectionTerminated)]
    assert terminated and terminated[0].error_code == 0x02 and terminated[0].reason_phrase == "server busy"
    # accept() hands the first one over; the cap still counts it while it lives.
    assert endpoint.accept() is not None and endpoint.accept() is None


def test_connections_accepted_but_never_taken_are_capped():
    endpoint = make_endpoint(max_connections=3)
    refused_datagrams = 0
    for n, seed in enumerate(range(10, 16)):
        client = QuicConnection(configuration=client_configuration(), entropy=seeded_entropy(seed))
        client.connect(SERVER_ADDR, now=0.0)
        for datagram, _ in client.datagrams_to_send(now=0.0):
            endpoint.receive_datagram(datagram, CLIENT_ADDR, 0.0)
            refused_datagrams += n >= 3
    assert len(endpoint._accepted) == 3 and len(endpoint.connections) == 3
    assert endpoint.stats["refused"] == refused_datagrams > 0


def test_pending_stateless_replies_are_capped():
    endpoint = make_endpoint(max_pending_replies=5)
    _, flight = first_flight()
    unknown = bytearray(flight[0])
    unknown[1:5] = (0x1A2A3A4A).to_bytes(4, "big")
    for _ in range(50):
        endpoint.receive_datagram(bytes(unknown), CLIENT_ADDR, 0.0)
    assert len(endpoint.stateless_datagrams()) == 5
    assert endpoint.stats["replies_dropped"] == 45 and endpoint.stats["version_negotiation"] == 50
    with pytest.raises(ValueError):
        make_endpoint(max_connections=0)


def test_a_gro_batch_is_routed_like_its_datagrams_one_by_one():
    # The same 1-RTT datagrams, once one by one and once as a GRO batch
    # (back to back, equal segments, the last shorter), give the same data.
    def run(batched: bool) -> tuple[bytes, list]:
        pair, endpoint = endpoint_pair()
        pair.handshake()
        pair.drive()
        sid = pair.client.get_next_available_stream_id()
        pair.client.send_stream_data(sid, bytes(range(256)) * 40, end_stream=True)
        datagrams = [d for d, _ in pair.client.datagrams_to_send(now=pair.now)]
        assert len(datagrams) >= 3 and len({len(d) for d in datagrams[:-1]}) == 1
        conn = endpoint.connections[0]
        before = conn.stats.packets_received
        if batched:
            segment = len(datagrams[0])
            touched = endpoint.receive_datagrams(b"".join(datagrams), segment, CLIENT_ADDR, pair.now)
            assert touched == [conn]
        else:
            for d in datagrams:
                assert endpoint.receive_datagram(d, CLIENT_ADDR, pair.now) is conn
        assert conn.stats.packets_received - before == len(datagrams)
        got = [e for e in iter(conn.next_event, None) if isinstance(e, events.StreamDataReceived)]
        return b"".join(e.data for e in got), got

    one_by_one, _ = run(False)
    batched, got = run(True)
    assert batched == one_by_one == bytes(range(256)) * 40
    # In-order data of one stream that arrived together comes as one event.
    assert len(got) == 1 and got[0].end_stream


def test_a_batch_with_unknown_and_long_header_datagrams_in_it():
    endpoint = make_endpoint()
    client, flight = first_flight()
    unknown = bytes([0x40]) + bytes(range(8)) + bytes(100)  # a short header nobody owns
    batch = flight[0] + unknown.ljust(len(flight[0]), b"\0")
    touched = endpoint.receive_datagrams(batch, len(flight[0]), CLIENT_ADDR, 0.0)
    assert len(touched) == 1 and endpoint.connections == touched
    assert endpoint.stats["stateless_reset"] == 1
    with pytest.raises(ValueError):
        endpoint.receive_datagrams(batch, 0, CLIENT_ADDR, 0.0)


def test_stream_events_merge_only_within_one_stream_and_up_to_its_end():
    from collections import deque

    from pyquic.connection import _merge_stream_data

    sdr = events.StreamDataReceived
    queue = deque([sdr(stream_id=0, data=b"b", end_stream=False), sdr(stream_id=4, data=b"x", end_stream=False),
                   sdr(stream_id=0, data=b"c", end_stream=True)])
    merged = _merge_stream_data(sdr(stream_id=0, data=b"a", end_stream=False), queue)
    assert (merged.data, merged.end_stream) == (b"ab", False) and len(queue) == 2
    queue = deque([sdr(stream_id=0, data=b"b", end_stream=True), sdr(stream_id=0, data=b"late", end_stream=False)])
    merged = _merge_stream_data(sdr(stream_id=0, data=b"a", end_stream=False), queue)
    assert (merged.data, merged.end_stream) == (b"ab", True) and len(queue) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(min_size=1, max_size=4000), st.integers(min_value=1, max_value=1500), st.booleans())
def test_random_gro_batches_never_break_the_endpoint(data, segment, with_connection):
    # Random batches, alone or after a real client's first flight (so some
    # segments may route to a live connection), raise nothing.
    endpoint = make_endpoint()
    if with_connection:
        _, flight = first_flight()
        for datagram in flight:
            endpoint.receive_datagram(datagram, CLIENT_ADDR, 0.0)
        conn = endpoint.connections[0]
        data = bytes([0x40]) + conn.host_cid + data  # a short header for it first
    endpoint.receive_datagrams(data, segment, CLIENT_ADDR, 0.0)
    endpoint.datagram_batches_to_send(0.0)
