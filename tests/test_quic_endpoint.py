# QuicEndpoint, the sans-I/O server side: routing by connection ID (the
# client's original DCID and every CID the connection issues, until it
# terminates), accepting only full-sized Initials with long enough DCIDs
# that open with their Initial keys and carry CRYPTO (junk leaves no
# state; what opened is handed to the connection, not opened again),
# Version Negotiation, Retry tokens (AEAD-sealed, bound to the address,
# expiring; ours-but-stale ones draw INVALID_TOKEN), the retry policy
# ("never" / "always" / "auto" with hysteresis), the half-open caps
# (unvalidated; token-validated) and the handshake timeout, stateless
# resets with the RFC 9000 §10.3 size rules, timers.  The same under real floods over UDP: test_quic_flood.py.
import pytest

from pyquic import events
from pyquic.connection import QuicConnection, QuicConnectionState
from pyquic.connection_ids import stateless_reset_token
from pyquic.address_validation import TOKEN_EXPIRED, TOKEN_VALID, TOKEN_WRONG_ADDRESS, RetryPolicy
from pyquic.endpoint import QuicEndpoint, RetryTokens
from pyquic.crypto import initial_keys
from pyquic.errors import ErrorCode, UsageError
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


def first_flight(config=None, seed=5):
    client = QuicConnection(configuration=config or client_configuration(), entropy=seeded_entropy(seed))
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
    assert set(conn.host_cids) <= routed and len(conn.host_cids) == server_configuration().active_connection_id_limit
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


def test_retry_token_checks_tell_ours_but_stale_from_not_ours():
    tokens = RetryTokens(b"k" * 16, seeded_entropy(1))
    token = tokens.seal(CLIENT_ADDR, b"odcid-12", b"rscid-12", now=100.0)
    assert tokens.check(token, CLIENT_ADDR, 101.0) == (TOKEN_VALID, b"odcid-12", b"rscid-12")
    assert tokens.check(token, ("10.9.9.9", 4433), 101.0).status == TOKEN_WRONG_ADDRESS
    assert tokens.check(token, (CLIENT_ADDR[0], 4434), 101.0).status == TOKEN_WRONG_ADDRESS  # the port counts
    assert tokens.check(token, CLIENT_ADDR, 110.5).status == TOKEN_EXPIRED
    assert tokens.check(token, CLIENT_ADDR, 98.0).status == TOKEN_EXPIRED  # issued "in the future"
    # Not ours: another key, a flipped bit, garbage, too short.
    assert RetryTokens(b"K" * 16, seeded_entropy(1)).check(token, CLIENT_ADDR, 101.0) is None
    assert tokens.check(token[:-1] + bytes([token[-1] ^ 1]), CLIENT_ADDR, 101.0) is None
    assert tokens.check(bytes(80), CLIENT_ADDR, 101.0) is None and tokens.check(b"x", CLIENT_ADDR, 101.0) is None


def retried_client(endpoint, seed=5):
    """A client whose first flight drew a Retry; returns it and its Initial with the token."""
    client, flight = first_flight(seed=seed)
    endpoint.receive_datagram(flight[0], CLIENT_ADDR, 0.0)
    replies = endpoint.stateless_datagrams()
    assert [decode_header(d, 0, short_dcid_length=8).packet_type for d, _ in replies] == [PacketType.RETRY]
    client.receive_datagram(replies[0][0], SERVER_ADDR, now=0.01)
    assert client._retry_received
    return client, [d for d, _ in client.datagrams_to_send(now=0.01)]


def closed_by(endpoint, client, addr):
    """The stateless CONNECTION_CLOSE the endpoint sent to `addr`, given to the
    client: the error code it terminates with."""
    (reply, to), = endpoint.stateless_datagrams()
    assert to == addr and decode_header(reply, 0, short_dcid_length=8).packet_type is PacketType.INITIAL
    assert len(reply) < 1200  # never more than the Initial that drew it
    client.receive_datagram(reply, SERVER_ADDR, now=0.05)
    assert client.state == QuicConnectionState.DRAINING
    client.handle_timer(client.get_timer())
    terminated = [e for e in iter(client.next_event, None) if isinstance(e, events.ConnectionTerminated)]
    return terminated[0].error_code


def test_a_token_of_ours_from_another_address_draws_invalid_token():
    endpoint = make_endpoint(retry=True)
    client, again = retried_client(endpoint)
    other = ("10.6.6.6", 1)
    assert endpoint.receive_datagram(again[0], other, 0.02) is None
    assert endpoint.connections == [] and endpoint.stats["invalid_token"] == 1
    # RFC 9000 §8.1.3: the client cannot take a second Retry; it hears INVALID_TOKEN at once.
    assert closed_by(endpoint, client, other) == ErrorCode.INVALID_TOKEN
    # From the address it was issued to, the same token opens a connection.
    endpoint = make_endpoint(retry=True)
    client, again = retried_client(endpoint)
    conn = endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02)
    assert conn is not None and conn.original_destination_connection_id == client.original_destination_connection_id


def test_an_expired_token_of_ours_draws_invalid_token_in_every_mode():
    for mode in ("always", "auto", "never"):
        endpoint = make_endpoint(retry="always")
        client, again = retried_client(endpoint)
        endpoint.retry = mode  # the token still counts after the policy changed
        assert endpoint.retry == mode
        assert endpoint.receive_datagram(again[0], CLIENT_ADDR, 10.5) is None  # lifetime 10 s
        assert endpoint.connections == [] and endpoint.stats["invalid_token"] == 1
        assert closed_by(endpoint, client, CLIENT_ADDR) == ErrorCode.INVALID_TOKEN


def test_a_token_not_ours_is_as_good_as_none():
    # RFC 9000 §8.1.3: a token the server cannot use (another server's, or a
    # NEW_TOKEN one it no longer knows) is treated as no token: a Retry while
    # the policy wants one, a connection while it does not.  (Dropping it
    # would lock out a client holding a stale NEW_TOKEN token.)
    stranger = make_endpoint(retry=True, token_key=b"s" * 16)
    client, again = retried_client(stranger)
    endpoint = make_endpoint(retry=True)  # another key: the token is not ours
    assert endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02) is None
    replies = endpoint.stateless_datagrams()
    assert [decode_header(d, 0, short_dcid_length=8).packet_type for d, _ in replies] == [PacketType.RETRY]
    assert endpoint.connections == [] and endpoint.stats["invalid_token"] == 0
    endpoint = make_endpoint(retry="never")
    conn = endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02)
    assert conn is not None and endpoint.half_open == 1


def test_retry_modes_and_booleans():
    assert make_endpoint(retry=True).retry == "always"
    assert make_endpoint(retry=False).retry == "never"
    assert make_endpoint().retry == "auto"
    with pytest.raises(ValueError):
        make_endpoint(retry="sometimes")
    with pytest.raises(ValueError):
        make_endpoint(max_half_open=0)


def test_auto_retry_policy_has_hysteresis():
    policy = RetryPolicy("auto", threshold=4, release=2)
    seen = [policy.wants_retry(n) for n in (0, 3, 4, 3, 2, 1, 2, 3, 4, 9, 0)]
    assert seen == [False, False, True, True, True, False, False, False, True, True, False]
    assert RetryPolicy("auto", threshold=10).release == 5
    assert all(RetryPolicy("always").wants_retry(n) for n in (0, 100))
    assert not any(RetryPolicy("never").wants_retry(n) for n in (0, 100))


def junk_initial(rng, size=1200):
    """Initial-shaped (v1, 8-byte CIDs, Length over the datagram) but not sealed with its DCID's keys."""
    dcid, scid = rng.randbytes(8), rng.randbytes(8)
    body = size - (1 + 4 + 1 + 8 + 1 + 8 + 1 + 2)
    return (bytes([0xC3]) + QUIC_V1.to_bytes(4, "big") + bytes([8]) + dcid + bytes([8]) + scid + b"\x00"
            + (0x4000 | body).to_bytes(2, "big") + rng.randbytes(body))


def test_undecryptable_initials_leave_no_state():
    import random

    endpoint = make_endpoint(max_connections=4)
    rng = random.Random(3)
    for _ in range(500):
        assert endpoint.receive_datagram(junk_initial(rng), CLIENT_ADDR, 0.0) is None
    assert endpoint.connections == [] and endpoint._routes == {} and endpoint.half_open == 0
    assert endpoint.stateless_datagrams() == [] and endpoint.get_timer() is None
    assert endpoint.stats["initial_undecryptable"] == 500 == endpoint.stats["datagrams_dropped"]
    # A real Initial whose payload was tampered with does not open either.
    _, flight = first_flight()
    tampered = bytearray(flight[0])
    tampered[-1] ^= 1
    assert endpoint.receive_datagram(bytes(tampered), CLIENT_ADDR, 0.0) is None
    assert endpoint.stats["initial_undecryptable"] == 501
    # While Retry is on, a token-less Initial is answered before it is opened
    # (cheaper under a flood): junk then draws a Retry, and still no state.
    retrying = make_endpoint(retry="always")
    assert retrying.receive_datagram(junk_initial(rng), CLIENT_ADDR, 0.0) is None
    assert retrying.stats["retry"] == 1 and retrying.connections == [] and retrying._routes == {}
    # The four slots are all still there for real clients.
    for seed in range(20, 24):
        _, flight = first_flight(seed=seed)
        assert endpoint.receive_datagram(flight[0], CLIENT_ADDR, 0.0) is not None
    assert len(endpoint.connections) == 4 and endpoint.stats["refused"] == 0


def test_the_first_initial_is_opened_once_and_handed_over_with_its_keys():
    # The endpoint opens a new client's first Initial (to decide whether to
    # keep state) and hands the connection that packet, opened, with the
    # Initial keys: the connection neither derives nor opens it again.  A
    # datagram whose first packet is damaged after it was opened shows it.
    client, flight = first_flight()
    header = decode_header(flight[0], 0, short_dcid_length=8)
    keys = initial_keys(header.version, header.destination_cid, is_client=False)
    opened = keys[1].protection.unprotect(flight[0][: header.length], header.pn_offset, -1)
    damaged = bytearray(flight[0])
    damaged[header.length - 1] ^= 1  # the AEAD tag

    def server():
        return QuicConnection(configuration=server_configuration(), entropy=seeded_entropy(3),
                              original_destination_connection_id=header.destination_cid)

    unaided = server()
    for datagram in (bytes(damaged), *flight[1:]):
        unaided.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    # The ClientHello's first part is lost to it: no ServerHello, no Handshake keys.
    assert unaided.stats.decryption_failures == 1 and unaided._spaces[1].send_keys is None
    handed = server()
    handed.receive_first_initial(bytes(damaged), CLIENT_ADDR, 0.0, keys, opened)
    assert handed._first_initial is None  # for that one packet only
    assert (handed._spaces[0].send_keys, handed._spaces[0].recv_keys) == keys
    for datagram in flight[1:]:
        handed.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    assert handed.stats.decryption_failures == 0 and handed._spaces[1].send_keys is not None
    for datagram, _ in handed.datagrams_to_send(0.0):
        client.receive_datagram(datagram, SERVER_ADDR, now=0.01)
    assert client._spaces[1].recv_keys is not None  # the ServerHello opened: the handed send keys are right
    # Through the endpoint, the whole handshake (the endpoint_pair tests) and:
    endpoint = make_endpoint(retry="never")
    conn = endpoint.receive_datagram(flight[0], CLIENT_ADDR, 0.0)
    assert conn is not None and conn.stats.packets_received == 1 and conn.stats.decryption_failures == 0


def test_an_initial_that_opens_but_carries_no_crypto_frame_is_dropped():
    from pyquic.crypto import initial_keys
    from pyquic.packet import encode_long_header

    dcid, scid = bytes(range(8)), bytes(range(8, 16))
    send, _ = initial_keys(QUIC_V1, dcid, is_client=True)
    payload = bytes([0x01]) + bytes(1200)  # PING and PADDING
    head = encode_long_header(QUIC_V1, PacketType.INITIAL, dcid, scid, 0, 2, payload_length=len(payload) + 16)
    endpoint = make_endpoint()
    assert endpoint.receive_datagram(send.protection.protect(head, payload, 0), CLIENT_ADDR, 0.0) is None
    assert endpoint.connections == [] and endpoint.stats["initial_undecryptable"] == 1


def test_half_open_connections_end_silently_at_the_handshake_timeout():
    for idle, expected in ((60.0, 10.0), (3.0, 3.0)):  # never later than the idle timeout
        endpoint = QuicEndpoint(server_configuration(idle_timeout=idle), entropy=seeded_entropy(9))
        _, flight = first_flight()
        conn = endpoint.receive_datagram(flight[0], CLIENT_ADDR, 1.0)
        assert endpoint.half_open == 1
        endpoint.datagrams_to_send(1.0)
        now = 1.0
        while (timer := endpoint.get_timer()) is not None and timer < 1.0 + expected:
            now = timer
            endpoint.handle_timer(now)
            endpoint.datagrams_to_send(now)  # probes: the client never answers
        assert conn.state != QuicConnectionState.TERMINATED
        assert endpoint.get_timer() == pytest.approx(1.0 + expected)
        endpoint.handle_timer(1.0 + expected)
        # Silently (RFC 9000 §10.1): nothing more is sent, the state is gone.
        assert endpoint.datagrams_to_send(1.0 + expected) == []
        assert conn.state == QuicConnectionState.TERMINATED
        terminated = [e for e in iter(conn.next_event, None) if isinstance(e, events.ConnectionTerminated)]
        assert terminated[0].reason_phrase == "Handshake timeout" and terminated[0].error_code == 0
        assert endpoint.connections == [] and endpoint._routes == {} and endpoint.half_open == 0
        assert endpoint.stats["half_open_expired"] == 1 and endpoint.stats["half_open_peak"] == 1


def lossy_half_open(server_config, until):
    """A client whose every datagram reaches the server while none of the
    server's reach it: it keeps probing, its PTO backing off (two datagrams
    at 0, 1, 3, 7, 15, 31 s). The times its datagrams arrived, the server's
    connection, and when that connection ended."""
    endpoint = QuicEndpoint(server_config, entropy=seeded_entropy(9))
    client = QuicConnection(configuration=client_configuration(handshake_timeout=None, idle_timeout=300.0),
                            entropy=seeded_entropy(5))
    client.connect(SERVER_ADDR, now=0.0)
    conn, arrivals, ended, now = None, [], None, 0.0
    while now <= until:
        for data, _ in client.datagrams_to_send(now):
            if not arrivals or arrivals[-1] != now:
                arrivals.append(now)
            accepted = endpoint.receive_datagram(data, CLIENT_ADDR, now)
            conn = conn or accepted
        endpoint.datagrams_to_send(now)  # all lost
        timers = [t for t in (client.get_timer(), endpoint.get_timer()) if t is not None]
        if not timers:
            break
        now = min(timers)
        client.handle_timer(now)
        endpoint.handle_timer(now)
        if conn.state == QuicConnectionState.TERMINATED:
            ended = now
            break
    (event,) = [e for e in iter(conn.next_event, None) if isinstance(e, events.ConnectionTerminated)]
    assert event.reason_phrase == "Handshake timeout" and event.error_code == 0
    return [round(t) for t in arrivals], ended


def test_a_half_open_handshake_lives_while_the_client_gets_through():
    # Under heavy loss (the interop runner's handshakeloss: 30 % each way) a
    # client's probes may be all a server hears for a while; each restarts
    # the handshake timeout, so the handshake is not cut at 10 s from its
    # first packet while the client is plainly there. The 8 s gap from 7 to
    # 15 s is survived; the 16 s one from 15 to 31 s is not.
    arrivals, ended = lossy_half_open(server_configuration(handshake_timeout=10.0), until=40.0)
    assert arrivals == [0, 1, 3, 7, 15]
    assert ended == pytest.approx(15.0 + 10.0, abs=0.05)


def test_a_half_open_handshake_still_ends_at_its_absolute_bound():
    # However often the client gets through, the whole handshake is bounded
    # by the longer of the handshake and idle timeouts: 12 s here, though the
    # client's datagram at 7 s would let it run to 17 s.
    arrivals, ended = lossy_half_open(server_configuration(handshake_timeout=10.0, idle_timeout=12.0), until=20.0)
    assert arrivals[:4] == [0, 1, 3, 7] and ended == pytest.approx(12.0)


def test_a_completed_handshake_is_not_cut_by_the_handshake_timeout():
    pair, endpoint = endpoint_pair(server_configuration(handshake_timeout=2.0))
    pair.handshake()
    assert endpoint.half_open == 0
    pair.drive(duration=5.0, quiet_gap=100)
    assert pair.server.connection.state == QuicConnectionState.CONNECTED
    # A client whose server never answers gives up at its own handshake timeout.
    client = QuicConnection(configuration=client_configuration(handshake_timeout=4.0), entropy=seeded_entropy(3))
    client.connect(SERVER_ADDR, now=0.0)
    while (timer := client.get_timer()) is not None:
        client.handle_timer(timer)
        client.datagrams_to_send(timer)
    assert timer is None and client.state == QuicConnectionState.TERMINATED
    terminated = [e for e in iter(client.next_event, None) if isinstance(e, events.ConnectionTerminated)]
    assert terminated[0].reason_phrase == "Handshake timeout"
    with pytest.raises(UsageError):
        client_configuration(handshake_timeout=0)


def half_open_clients(endpoint, seeds, now=0.0):
    """Each seed's client sends its first flight and never continues; the replies per client."""
    replies = []
    for seed in seeds:
        _, flight = first_flight(seed=seed)
        for datagram in flight:
            endpoint.receive_datagram(datagram, ("10.1.0.%d" % seed, 1000), now)
        replies.append([decode_header(d, 0, short_dcid_length=8).packet_type for d, _ in endpoint.stateless_datagrams()])
        endpoint.datagrams_to_send(now)
    return replies


def test_past_max_half_open_new_clients_are_refused_when_retry_is_never():
    endpoint = make_endpoint(retry="never", max_half_open=3)
    replies = half_open_clients(endpoint, range(30, 36))
    assert replies[:3] == [[], [], []] and all(r == [PacketType.INITIAL] * 2 for r in replies[3:])
    assert endpoint.half_open == 3 and len(endpoint.connections) == 3
    assert endpoint.stats["refused"] == 6 and endpoint.stats["half_open_peak"] == 3
    # At the handshake timeout the slots free up again.
    endpoint.handle_timer(10.0)
    assert endpoint.half_open == 0 and endpoint.connections == []
    assert half_open_clients(endpoint, [40], now=10.0) == [[]]


def test_auto_retry_turns_on_above_the_threshold_and_validated_clients_pass_the_cap():
    endpoint = make_endpoint(retry="auto", retry_threshold=3, max_half_open=3)
    replies = half_open_clients(endpoint, range(30, 35))
    # Three half-open connections, then Retry for everyone else (nothing kept for them).
    assert replies == [[], [], [], [PacketType.RETRY] * 2, [PacketType.RETRY] * 2]
    assert endpoint.half_open == 3 and endpoint.stats["refused"] == 0
    # A client that comes back with its token gets in past the half-open cap.
    client, again = retried_client(endpoint, seed=50)
    conn = endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02)
    assert conn is not None and conn._path.validated and endpoint.half_open == 4
    # All time out; the hysteresis turns Retry off below the release level.
    endpoint.handle_timer(10.5)
    assert endpoint.half_open == 0 and endpoint.stats["half_open_expired"] == 4
    assert half_open_clients(endpoint, [60], now=10.5) == [[]]
    # "always": Retry even with nobody half-open.
    assert half_open_clients(make_endpoint(retry="always"), [61]) == [[PacketType.RETRY] * 2]


def test_validated_half_open_connections_have_a_bound_of_their_own():
    # max_half_open for unvalidated addresses; token-validated ones get up to
    # max_validated_half_open more (a reserve unvalidated clients cannot
    # take), then CONNECTION_REFUSED: they cannot take a second Retry.
    endpoint = make_endpoint(retry="auto", retry_threshold=2, max_half_open=2, max_validated_half_open=2)
    assert half_open_clients(endpoint, [30, 31]) == [[], []] and endpoint.half_open == 2
    for seed in (50, 51):
        _, again = retried_client(endpoint, seed=seed)
        conn = endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02)
        assert conn is not None and conn._path.validated
    assert endpoint.half_open == 4 and endpoint.stats["half_open_peak"] == 4 and endpoint.stats["refused"] == 0
    client, again = retried_client(endpoint, seed=52)
    assert endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02) is None
    assert endpoint.half_open == 4 and len(endpoint.connections) == 4 and endpoint.stats["refused"] == 1
    assert closed_by(endpoint, client, CLIENT_ADDR) == ErrorCode.CONNECTION_REFUSED
    # New unvalidated clients still get Retry, not a refusal.
    assert half_open_clients(endpoint, [32], now=0.03)[0][0] is PacketType.RETRY
    # Counted together: validated connections fill unvalidated slots first,
    # so with no reserve a validated client past max_half_open is refused.
    endpoint = make_endpoint(retry="always", max_half_open=1, max_validated_half_open=0)
    _, again = retried_client(endpoint, seed=53)
    assert endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02) is not None
    client, again = retried_client(endpoint, seed=54)
    assert endpoint.receive_datagram(again[0], CLIENT_ADDR, 0.02) is None
    assert closed_by(endpoint, client, CLIENT_ADDR) == ErrorCode.CONNECTION_REFUSED
    assert endpoint.half_open == 1 and endpoint.stats["refused"] == 1
    with pytest.raises(ValueError):
        make_endpoint(max_validated_half_open=-1)


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
    learned = {entry.token for entry in pair.client._peer_cids.seen.values()}
    assert learned >= {stateless_reset_token(key, c) for c in conn.host_cids}


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
    size = conn.path_mtu.size  # 1452, found by PMTU discovery during the handshake's drive
    assert total == 12000 // size * size  # the initial congestion window (RFC 9002 §7.2: 12,000 bytes)
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
        frame = conn._end.frame
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
    from pyquic.events import merge_stream_data

    sdr = events.StreamDataReceived
    queue = [sdr(stream_id=9, data=b"seen", end_stream=False), sdr(stream_id=0, data=b"b", end_stream=False),
             sdr(stream_id=4, data=b"x", end_stream=False), sdr(stream_id=0, data=b"c", end_stream=True)]
    merged, at = merge_stream_data(sdr(stream_id=0, data=b"a", end_stream=False), queue, 1)
    assert (merged.data, merged.end_stream, at) == (b"ab", False, 2)
    queue = [sdr(stream_id=0, data=b"b", end_stream=True), sdr(stream_id=0, data=b"late", end_stream=False)]
    merged, at = merge_stream_data(sdr(stream_id=0, data=b"a", end_stream=False), queue, 0)
    assert (merged.data, merged.end_stream, at) == (b"ab", True, 1)


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


def test_a_client_whose_handshake_is_never_confirmed_gives_up_at_the_handshake_timeout():
    # The client's handshake completes, but HANDSHAKE_DONE never arrives (say
    # the server dropped a half-open connection): it stops at its handshake
    # timeout instead of waiting out the idle timeout.
    pair = Pair(client_config=client_configuration(handshake_timeout=5.0))
    pair.connect()
    assert pair.drive_until(lambda: pair.client.handshake_complete)
    assert not pair.client.handshake_confirmed
    pair.server_to_client.blackhole = (pair.now, pair.now + 100)
    pair.drive(duration=20, quiet_gap=100)
    assert pair.client.state == QuicConnectionState.TERMINATED
    (event,) = pair.events_of("client", events.ConnectionTerminated)
    assert event.reason_phrase == "Handshake timeout"
    ended = [entry[0] for entry in pair.log
             if entry[1:3] == ("client", "event") and isinstance(entry[3], events.ConnectionTerminated)]
    # Five seconds after the last packet the client received (the handshake
    # timeout counts from the peer's last packet that opened, not from connect()).
    last_received = max(entry[0] for entry in pair.log if entry[1:3] == ("client", "received"))
    assert 0 < last_received < 1 and ended == [pytest.approx(last_received + 5.0)]
