# QUIC 0-RTT (RFC 9001 §4.6, RFC 9000 §7.4.1) on a simulated clock: a
# client resuming with a ticket sends stream data in 0-RTT packets (in its
# Initial datagram and after it) and gets the answer one round trip after it
# started; a server that does not take it (no early data configured, or
# limits lowered since the ticket) makes the client resend in 1-RTT; and the
# same against aioquic's QuicConnection in both roles.
import pytest

from pyquic import events
from pyquic.connection import QuicConnection
from tests.quic_pair import Pair, client_configuration, seeded_entropy, server_configuration
from tests.test_quic_connection_handshake import AioquicWrapper, pem_files  # noqa: F401  (fixture)

RTT = 0.1
REQUEST = b"GET /early " + bytes(range(256)) * 12  # ~3 kB: one Initial datagram cannot hold it all
ANSWER = b"answered in 0.5-RTT data" * 100


def ticket_from(server_config, **client_kwargs):
    tickets = []
    pair = Pair(server_config=server_config, rtt=RTT)
    pair.client = QuicConnection(configuration=client_configuration(**client_kwargs), session_ticket_handler=tickets.append,
                                 entropy=seeded_entropy(20))
    pair.handshake()
    pair.drive()
    assert tickets and tickets[-1].transport_parameters
    return tickets[-1]


def resume_with_early_data(server_config, ticket, answer=True):
    pair = Pair(client_config=client_configuration(session_ticket=ticket, enable_early_data=True),
                server_config=server_config, rtt=RTT)
    pair.connect()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, REQUEST, end_stream=True)
    answered = []

    def done() -> bool:
        if pair.server is not None and not answered and pair.received("server", sid) == REQUEST:
            answered.append(pair.now)
            if answer:
                pair.server.send_stream_data(sid, ANSWER, end_stream=True)
        return pair.received("client", sid) == ANSWER

    assert pair.drive_until(done, duration=10)
    answer_at = pair.now
    pair.drive()  # the rest of the handshake (the server completes at 1.5 RTT)
    return pair, sid, answered[0], answer_at


def completed(pair, who):
    return [e for e in (pair.client_events if who == "client" else pair.server_events)
            if isinstance(e, events.HandshakeCompleted)][0]


def test_early_data_accepted_answers_within_one_round_trip():
    server_config = server_configuration(max_early_data=0xFFFFFFFF)
    pair, sid, request_at, answer_at = resume_with_early_data(server_config, ticket_from(server_config))
    client, server = pair.client, pair.server
    assert completed(pair, "client").early_data_accepted and completed(pair, "client").session_resumed
    assert completed(pair, "server").early_data_accepted
    assert client.stats.zero_rtt_packets_sent >= 2 and server.stats.zero_rtt_packets_received >= 2
    # The server had the whole request half a round trip in, before the
    # handshake completed on its side, and the client its answer one round trip in.
    kinds = [type(e) for e in pair.server_events]
    assert kinds.index(events.StreamDataReceived) < kinds.index(events.HandshakeCompleted)
    assert request_at == pytest.approx(RTT / 2)
    assert answer_at == pytest.approx(RTT, abs=1e-6)
    assert not client.stats.zero_rtt_rejected


def test_the_initial_datagram_carries_0rtt_after_the_client_hello():
    from pyquic.packet import PacketType, split_datagram

    server_config = server_configuration(max_early_data=0xFFFFFFFF)
    ticket = ticket_from(server_config)
    client = QuicConnection(configuration=client_configuration(session_ticket=ticket, enable_early_data=True),
                            entropy=seeded_entropy(21))
    client.connect(("10.0.0.2", 443), now=0.0)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, REQUEST, end_stream=True)
    datagrams = [d for d, _ in client.datagrams_to_send(now=0.0)]
    types = [[h.packet_type for h, _ in split_datagram(d, 8).packets] for d in datagrams]
    # The ClientHello (with an ML-KEM share) fills the first Initial datagram;
    # 0-RTT follows it in the second, then goes on in datagrams of its own.
    initial = [i for i, t in enumerate(types) if PacketType.INITIAL in t]
    last = initial[-1]
    assert types[last] == [PacketType.INITIAL, PacketType.ZERO_RTT]
    assert all(t == [PacketType.ZERO_RTT] for t in types[last + 1:]) and len(types) > last + 1
    assert all(len(datagrams[i]) >= 1200 for i in initial)


def test_early_data_not_configured_on_the_server_is_resent_in_1rtt():
    ticket_server = server_configuration(max_early_data=0xFFFFFFFF)
    ticket = ticket_from(ticket_server)
    # The same ticket key, but this server takes no 0-RTT.
    no_early = server_configuration(max_early_data=0, ticket_sealer=ticket_server.tls_config().sealer(0))
    pair, sid, _, answer_at = resume_with_early_data(no_early, ticket)
    assert answer_at > 1.5 * RTT  # the request waited for 1-RTT keys
    assert completed(pair, "client").session_resumed and not completed(pair, "client").early_data_accepted
    assert pair.client.stats.zero_rtt_packets_sent >= 2 and pair.server.stats.zero_rtt_packets_received == 0
    assert pair.client.stats.zero_rtt_rejected
    assert pair.received("server", sid) == REQUEST


def test_a_server_that_lowered_its_limits_refuses_0rtt():
    ticket_server = server_configuration(max_early_data=0xFFFFFFFF, max_data=1 << 20)
    ticket = ticket_from(ticket_server)
    lowered = server_configuration(max_early_data=0xFFFFFFFF, max_data=1 << 19,
                                   ticket_sealer=ticket_server.tls_config().sealer(0))
    pair, sid, _, _ = resume_with_early_data(lowered, ticket)
    assert completed(pair, "client").session_resumed and not completed(pair, "client").early_data_accepted
    assert pair.received("server", sid) == REQUEST and pair.client.stats.zero_rtt_rejected


def test_a_rejected_client_hears_what_was_resent_and_takes_the_lower_limits():
    # RFC 9001 §4.6.2: the application learns 0-RTT was refused and what goes
    # again; the server's new (lower) limits replace those of the ticket.
    ticket_server = server_configuration(max_early_data=0xFFFFFFFF, max_data=1 << 20, max_streams_bidi=100)
    ticket = ticket_from(ticket_server)
    lowered = server_configuration(max_early_data=0xFFFFFFFF, max_data=1 << 19, max_streams_bidi=10,
                                   ticket_sealer=ticket_server.tls_config().sealer(0))
    pair, sid, _, _ = resume_with_early_data(lowered, ticket)
    (rejected,) = [e for e in pair.client_events if isinstance(e, events.ZeroRttRejected)]
    assert rejected.resent == {sid: len(REQUEST)}
    streams = pair.client._streams
    assert streams.send_data.limit <= 1 << 19 < 1 << 20
    assert streams.local_streams[0].limit == 10
    assert pair.received("server", sid) == REQUEST


def test_no_0rtt_without_enable_early_data():
    server_config = server_configuration(max_early_data=0xFFFFFFFF)
    ticket = ticket_from(server_config)
    pair = Pair(client_config=client_configuration(session_ticket=ticket), server_config=server_config, rtt=RTT)
    pair.connect()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"later", end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"later" and pair.client.stats.zero_rtt_packets_sent == 0


class _Store:
    """aioquic's server keeps tickets itself: handler in, fetcher out."""

    def __init__(self):
        self.tickets = {}

    def add(self, ticket):
        self.tickets[ticket.ticket] = ticket

    def pop(self, label):
        return self.tickets.pop(label, None)


def test_our_client_0rtt_to_aioquic_server(pem_files):  # noqa: F811
    from aioquic.quic import events as aev
    from aioquic.quic.configuration import QuicConfiguration as AConfig
    from aioquic.quic.connection import QuicConnection as AConn

    sc = AConfig(is_client=False, alpn_protocols=["hq-test"])
    sc.load_cert_chain(pem_files["server_chain"], pem_files["server_key"])
    store = _Store()

    def aioquic_server(odcid):
        return AioquicWrapper(AConn(configuration=sc, original_destination_connection_id=odcid,
                                    session_ticket_handler=store.add, session_ticket_fetcher=store.pop))

    tickets = []
    first = Pair(server_factory=aioquic_server, rtt=RTT)
    first.client = QuicConnection(configuration=client_configuration(), session_ticket_handler=tickets.append,
                                  entropy=seeded_entropy(22))
    first.handshake()
    first.drive()
    assert tickets and tickets[0].max_early_data == 0xFFFFFFFF
    pair = Pair(client_config=client_configuration(session_ticket=tickets[0], enable_early_data=True),
                server_factory=aioquic_server, rtt=RTT)
    pair.connect()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, REQUEST, end_stream=True)
    pair.drive()
    got = b"".join(e.data for e in pair.server_events if isinstance(e, aev.StreamDataReceived))
    assert got == REQUEST
    done = completed(pair, "client")
    assert done.session_resumed and done.early_data_accepted
    assert pair.client.stats.zero_rtt_packets_sent >= 2
    hs = [e for e in pair.server_events if isinstance(e, aev.HandshakeCompleted)][0]
    assert hs.early_data_accepted and hs.session_resumed


def test_aioquic_client_0rtt_to_our_server(pem_files):  # noqa: F811
    from aioquic.quic import events as aev
    from aioquic.quic.configuration import QuicConfiguration as AConfig
    from aioquic.quic.connection import QuicConnection as AConn

    server_config = server_configuration(max_early_data=0xFFFFFFFF)

    def aioquic_client(**kwargs):
        cc = AConfig(is_client=True, alpn_protocols=["hq-test"], server_name="localhost", **kwargs)
        cc.load_verify_locations(pem_files["ca"])
        return cc

    tickets = []
    first = Pair(client=AioquicWrapper(AConn(configuration=aioquic_client(), session_ticket_handler=tickets.append)),
                 server_config=server_config, rtt=RTT)
    first.client.connect(("10.0.0.2", 443), now=0.0)
    first.drive()
    assert tickets and tickets[0].max_early_data_size == 0xFFFFFFFF
    pair = Pair(client=AioquicWrapper(AConn(configuration=aioquic_client(session_ticket=tickets[0]))),
                server_config=server_config, rtt=RTT)
    pair.client.connect(("10.0.0.2", 443), now=0.0)
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, REQUEST, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == REQUEST
    assert pair.server.stats.zero_rtt_packets_received >= 1
    done = completed(pair, "server")
    assert done.early_data_accepted and done.session_resumed
    hs = [e for e in pair.client_events if isinstance(e, aev.HandshakeCompleted)][0]
    assert hs.early_data_accepted


def test_qlog_names_0rtt_packets_on_both_sides(tmp_path):
    import json

    server_config = server_configuration(max_early_data=0xFFFFFFFF, qlog_dir=str(tmp_path / "server"))
    ticket = ticket_from(server_configuration(max_early_data=0xFFFFFFFF, ticket_sealer=server_config.tls_config().sealer(0)))
    pair = Pair(client_config=client_configuration(session_ticket=ticket, enable_early_data=True,
                                                   qlog_dir=str(tmp_path / "client")),
                server_config=server_config, rtt=RTT)
    pair.connect()
    pair.client.send_stream_data(pair.client.get_next_available_stream_id(), REQUEST, end_stream=True)
    pair.drive()
    pair.client.close()
    pair.drive(duration=10, quiet_gap=100)  # qlog files are complete once their connections end

    def packet_types(side: str, name: str) -> set:
        out = set()
        for path in (tmp_path / side).iterdir():
            for record in path.read_text().split("\x1e"):
                if record.strip():
                    event = json.loads(record)
                    if event.get("name") == name:
                        out.add(event["data"]["header"]["packet_type"])
        return out

    assert "0RTT" in packet_types("client", "transport:packet_sent")
    assert "0RTT" in packet_types("server", "transport:packet_received")


def test_the_server_drops_its_0rtt_keys_three_ptos_after_confirmation():
    from pyquic.packet import PacketType, split_datagram

    server_config = server_configuration(max_early_data=0xFFFFFFFF)
    ticket = ticket_from(server_config)
    pair = Pair(client_config=client_configuration(session_ticket=ticket, enable_early_data=True),
                server_config=server_config, rtt=RTT)
    sent = []
    transmit = pair._transmit

    def capture(who, link, data, addr=None, codepoint=0):
        if who == "client":
            sent.append(data)
        transmit(who, link, data, addr, codepoint)

    pair._transmit = capture
    pair.connect()
    pair.client.send_stream_data(pair.client.get_next_available_stream_id(), REQUEST, end_stream=True)
    pair.drive()
    server = pair.server
    assert server._zero_rtt.discard_at is not None
    zero_rtt = [d for d in sent if [h.packet_type for h, _ in split_datagram(d, 8).packets] == [PacketType.ZERO_RTT]]
    # Before the deadline a replayed 0-RTT packet still opens (and is a duplicate) ...
    received, dropped = server.stats.zero_rtt_packets_received, server.stats.packets_dropped
    server.receive_datagram(zero_rtt[0], pair.client_addr, now=server._zero_rtt.discard_at - 1e-3)
    assert server.stats.zero_rtt_packets_received == received + 1
    # ... after it, the keys are gone and it is dropped unopened.
    server.handle_timer(server._zero_rtt.discard_at)
    assert server._zero_rtt.recv is None
    server.receive_datagram(zero_rtt[0], pair.client_addr, now=server._zero_rtt.discard_at + 1e-3)
    assert server.stats.zero_rtt_packets_received == received + 1 and server.stats.packets_dropped == dropped + 1


def test_an_ack_for_rejected_0rtt_is_a_protocol_violation():
    from pyquic.errors import ErrorCode
    from pyquic.frames import Ack
    from tests.quic_pair import craft_short_packet

    ticket_server = server_configuration(max_early_data=0xFFFFFFFF)
    ticket = ticket_from(ticket_server)
    no_early = server_configuration(max_early_data=0, ticket_sealer=ticket_server.tls_config().sealer(0))
    pair, sid, _, _ = resume_with_early_data(no_early, ticket)
    assert pair.client.stats.zero_rtt_rejected and pair.client._zero_rtt.rejected_last_pn is not None
    ack = bytearray()
    Ack(((0, 1),)).encode(ack)  # packet 0 was 0-RTT, which this server refused
    pair.client.receive_datagram(craft_short_packet(pair.server, bytes(ack)), ("10.0.0.2", 443), now=pair.now)
    pair.drive()
    closed = [e for e in pair.client_events if isinstance(e, events.ConnectionTerminated)]
    assert closed and closed[0].error_code == ErrorCode.PROTOCOL_VIOLATION


def test_zero_rtt_state_decides_and_returns_without_a_connection():
    # ZeroRtt owns the keys and rules; it hands back what the connection applies.
    import dataclasses

    from pyquic.crypto import initial_keys
    from pyquic.recovery import LossRecovery
    from pyquic.versions import QUIC_V1
    from pyquic.zero_rtt import Refusal, ZeroRtt

    keys, _ = initial_keys(QUIC_V1, b"\x01" * 8, True)  # any packet keys will do here
    server_config = server_configuration(max_early_data=0xFFFFFFFF, max_data=1 << 20, max_streams_bidi=77)
    ticket = ticket_from(server_config)
    client = ZeroRtt()
    # No remembered limits (or unreadable ones): no 0-RTT.
    assert client.start_client(keys, None, QUIC_V1) is None and client.send is None
    assert client.start_client(keys, dataclasses.replace(ticket, transport_parameters=b"\xff"), QUIC_V1) is None
    assert client.send is None
    remembered = client.start_client(keys, ticket, QUIC_V1)
    assert remembered.initial_max_data == 1 << 20 and remembered.initial_max_streams_bidi == 77
    assert client.send is keys
    # Refused with nothing in flight: nothing to requeue, an empty event, no packet number to guard.
    refusal = client.on_rejected(LossRecovery(is_client=True))
    assert refusal == Refusal([], events.ZeroRttRejected({})) and client.send is None
    assert client.rejected_last_pn is None
    # Server: the receive keys stay 3 PTO after confirmation, then go.
    server, loss = ZeroRtt(), LossRecovery(is_client=False)
    server.on_handshake_confirmed(1.0, loss)
    assert server.discard_at is None  # no 0-RTT keys, nothing to time
    server.install_recv(keys)
    server.on_handshake_confirmed(1.0, loss)
    assert server.discard_at == 1.0 + 3 * loss.probe_timeout()
    assert not server.recv_keys_expired(server.discard_at - 1e-3) and server.recv is keys
    assert server.recv_keys_expired(server.discard_at) and server.recv is None
