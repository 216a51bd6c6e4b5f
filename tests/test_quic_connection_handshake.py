# The QUIC handshake between two QuicConnections on a simulated clock
# (tests/quic_pair.py): the exact events and timers without loss and with
# each flight lost once (RFC 9002 PTO and loss detection at the expected
# times), key discarding (RFC 9001 §4.9), transport parameter checks
# (RFC 9000 §7.3), Retry and Version Negotiation through the endpoint, QUIC
# v2 (RFC 9369), TLS failures as CRYPTO_ERROR, idle timeout, the
# anti-amplification limit, and interop with aioquic's sans-I/O connection.
import tempfile

import pytest

from pyquic import events
from pyquic.connection import QuicConnection, QuicConnectionState
from pyquic.errors import ErrorCode
from pyquic.recovery import PacketNumberSpace
from pyquic.versions import QUIC_V1, QUIC_V2
from tests.quic_pair import SERVER_ADDR, Pair, client_configuration, endpoint_pair, seeded_entropy, server_configuration

RTT = 0.1
# These tests pin the handshake's packets and timers to the millisecond.  PMTU
# probes (sent once the handshake is confirmed) add packets, acknowledgments
# and timers of their own, so they are off here; tests/test_quic_pmtud.py has them.
NO_PROBES = dict(max_probe_datagram_size=0)


def quiet_pair(**kw) -> Pair:
    return Pair(client_configuration(**NO_PROBES), server_configuration(**NO_PROBES), rtt=RTT, **kw)


def kinds(evs, skip=(events.ConnectionIdIssued,)):
    return [type(e).__name__ for e in evs if not isinstance(e, skip)]


def timeline(pair, who=None, what=("sent", "lost", "received", "timer")):
    return [
        (round(entry[0], 6), entry[1], entry[2])
        for entry in pair.log
        if entry[2] in what and (who is None or entry[1] == who)
    ]


def event_times(pair, kind):
    return [(round(e[0], 6), e[1]) for e in pair.log if e[2] == "event" and isinstance(e[3], kind)]


def t(x):
    return None if x is None else round(x, 6)


# -- without loss ---------------------------------------------------------------


def test_handshake_events_and_timers_without_loss():
    pair = quiet_pair()
    pair.connect()
    pair.flush()
    # RFC 9002 §6.2.2: before an RTT sample the PTO is 333 ms + 4 * 333/2 ms.
    assert t(pair.client.get_timer()) == 0.999
    snapshots = []
    while len(snapshots) < 6 and pair.step():
        pair.flush()
        snapshots.append((t(pair.now), t(pair.client.get_timer()), t(pair.server.get_timer())))
    assert snapshots == [
        (0.05, 0.999, 1.049),  # server sent its flight: PTO from its own initial RTT
        (0.1, 0.4, 1.049),  # client: RTT 100 ms -> Handshake PTO 0.1 + 0.1 + 4 * 0.05
        (0.15, 0.4, 0.425),  # server confirmed: 1-RTT PTO with max_ack_delay (two samples)
        (0.2, 0.225, 0.425),  # client got HANDSHAKE_DONE: ACK after max_ack_delay
        (0.225, 60.2, 0.425),  # nothing in flight: the idle timer
        (0.275, 60.2, 60.275),
    ]
    # The datagrams: the ClientHello (hybrid key share) fills two padded Initials.
    sizes = [(e[0], e[1], e[2], e[4]) for e in pair.log if e[2] == "sent"]
    assert [(round(a, 3), b, d) for a, b, _, d in sizes[:2]] == [(0.0, "client", 1200), (0.0, "client", 1200)]
    assert [(round(a, 3), b) for a, b, _, _ in sizes] == [
        (0.0, "client"), (0.0, "client"),
        (0.05, "server"), (0.05, "server"), (0.05, "server"),
        (0.1, "client"),
        (0.15, "server"),
        (0.225, "client"),
    ]
    assert sizes[5][3] == 1200  # Initial ACK + Handshake Finished: padded (RFC 9000 §14.1)
    assert event_times(pair, events.HandshakeCompleted) == [(0.1, "client"), (0.15, "server")]
    assert kinds(pair.client_events) == ["ProtocolNegotiated", "HandshakeCompleted"]
    assert kinds(pair.server_events) == ["ProtocolNegotiated", "HandshakeCompleted"]
    assert pair.client_events[1] == events.HandshakeCompleted("hq-test", False, False)
    # Each side supplies the peer with CIDs up to active_connection_id_limit (4 by default).
    assert pair.client._configuration.active_connection_id_limit == 4
    assert len(pair.events_of("client", events.ConnectionIdIssued)) == 3
    assert pair.client.handshake_confirmed and pair.server.handshake_confirmed
    # The idle timeout then ends both, silently (RFC 9000 §10.1).
    pair.drive(duration=120, quiet_gap=1000)
    assert event_times(pair, events.ConnectionTerminated) == [(60.2, "client"), (60.275, "server")]
    assert pair.client_events[-1] == events.ConnectionTerminated(ErrorCode.NO_ERROR, None, "Idle timeout")


def test_keys_are_discarded_at_the_right_moments():
    pair = Pair()
    pair.connect()
    pair.flush()
    c = pair.client
    assert c._spaces[0].send_keys is not None
    pair.drive_until(lambda: pair.server is not None and pair.server._spaces[1].recv_keys is not None)
    s = pair.server
    assert not s._spaces[PacketNumberSpace.INITIAL].discarded
    # Client: Initial keys go when it first sends a Handshake packet (RFC 9001 §4.9.1).
    pair.drive_until(lambda: c.handshake_complete)
    assert not c._spaces[PacketNumberSpace.INITIAL].discarded
    pair.flush()
    assert c._spaces[PacketNumberSpace.INITIAL].discarded
    # Server: when it first processes a Handshake packet.
    pair.drive_until(lambda: s.handshake_complete)
    assert s._spaces[PacketNumberSpace.INITIAL].discarded
    # Handshake keys at confirmation (§4.9.2): the server at completion, the client on HANDSHAKE_DONE.
    assert s._spaces[PacketNumberSpace.HANDSHAKE].discarded
    assert not c._spaces[PacketNumberSpace.HANDSHAKE].discarded
    pair.drive_until(lambda: c.handshake_confirmed)
    assert c._spaces[PacketNumberSpace.HANDSHAKE].discarded


# -- each flight lost once --------------------------------------------------------

LOSS_CASES = {
    # name: (link, datagram indexes lost, first retransmission (who, time), completion times)
    "client Initial": ("client_to_server", {0, 1}, ("client", 0.999), (1.099, 1.149)),
    # Not a timer: the client's Handshake packets it has no keys for make it
    # send its ClientHello again, and that makes the server resend its
    # Initial at once (RFC 9002 §6.2.3), before its time threshold (0.1625).
    "server Initial": ("server_to_client", {0}, ("server", 0.15), (0.2, 0.25)),
    # The PTO's probe carries both the lost Initial part and the Handshake data (§6.2.4).
    "server Handshake": ("server_to_client", {1, 2}, ("server", 0.35), (0.4, 0.45)),
    "client Finished": ("client_to_server", {2}, ("client", 0.4), (0.1, 0.45)),
    "HANDSHAKE_DONE": ("server_to_client", {3}, ("server", 0.425), (0.1, 0.15)),
}


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_handshake_with_one_flight_lost(case):
    link, lost, (who, retransmit_at), completed = LOSS_CASES[case]
    pair = quiet_pair()
    getattr(pair, link).drop_nth = set(lost)
    pair.connect()
    assert pair.drive_until(
        lambda: pair.server is not None and pair.client.handshake_confirmed and pair.server.handshake_confirmed,
        duration=10,
    )
    assert [time for time, _ in event_times(pair, events.HandshakeCompleted)] == list(completed)
    # The first datagram after the loss comes from the expected timer at the expected time.
    sends = [e for e in pair.log if e[2] == "sent" and e[1] == who]
    lost_at = max(e[0] for e in pair.log if e[2] == "lost")
    first_after = next(e for e in sends if e[0] > lost_at)
    assert round(first_after[0], 6) == retransmit_at
    timers = [round(e[0], 6) for e in pair.log if e[2] == "timer" and e[1] == who]
    received = [round(e[0], 6) for e in pair.log if e[2] == "received" and e[1] == who]
    assert (retransmit_at in received) if case == "server Initial" else (retransmit_at in timers)
    pair.drive()
    assert pair.client.state == QuicConnectionState.CONNECTED
    assert pair.server.state == QuicConnectionState.CONNECTED
    # Nothing outstanding once settled.
    for conn in (pair.client, pair.server):
        assert conn.loss.bytes_in_flight == 0


def test_handshake_done_loss_is_repaired_by_the_pto():
    pair = quiet_pair()
    pair.server_to_client.drop_nth = {3}
    pair.connect()
    pair.drive_until(lambda: pair.client.handshake_confirmed, duration=5)
    # The server's 1-RTT PTO (RFC 9002 §6.2.1: with max_ack_delay) resent HANDSHAKE_DONE.
    assert round(pair.now, 6) == 0.475


def test_handshake_under_heavy_random_loss_completes():
    for seed in range(5):
        pair = Pair(seed=seed)
        pair.client_to_server.loss = pair.server_to_client.loss = 0.3
        pair.connect()
        assert pair.drive_until(
            lambda: pair.server is not None and pair.client.handshake_confirmed and pair.server.handshake_confirmed,
            duration=60,
        ), seed


def test_handshake_with_reordering_and_duplication():
    pair = Pair(seed=3)
    for link in (pair.client_to_server, pair.server_to_client):
        link.reorder = 0.5
        link.reorder_delay = 0.08
        link.duplicate = 0.3
    pair.connect()
    assert pair.drive_until(
        lambda: pair.server is not None and pair.client.handshake_confirmed and pair.server.handshake_confirmed
    )


# -- failures -----------------------------------------------------------------------


def test_alpn_mismatch_is_a_crypto_error():
    pair = Pair(server_config=server_configuration(alpn_protocols=["other"]))
    pair.connect()
    pair.drive(duration=10)
    closed = pair.events_of("client", events.ConnectionTerminated)
    # RFC 9001 §8.1: no_application_protocol (120) -> CRYPTO_ERROR 0x178.
    assert closed and closed[0].error_code == 0x100 + 120
    assert pair.events_of("server", events.ConnectionTerminated)[0].error_code == 0x100 + 120


def test_untrusted_certificate_is_a_crypto_error():
    config = client_configuration()
    config.cadata = None
    config.cafile = None
    from tests.pki import make_test_pki
    from cryptography.hazmat.primitives import serialization

    config.cadata = make_test_pki("p384").ca.public_bytes(serialization.Encoding.PEM)
    pair = Pair(client_config=config)
    pair.connect()
    pair.drive(duration=10)
    closed = pair.events_of("client", events.ConnectionTerminated)
    assert closed and closed[0].error_code in (0x100 + 48, 0x100 + 42)  # unknown_ca / bad_certificate
    # The server hears of it (Handshake-level CONNECTION_CLOSE).
    assert pair.events_of("server", events.ConnectionTerminated)[0].error_code == closed[0].error_code


def test_wrong_original_destination_connection_id_is_a_transport_parameter_error():
    pair = Pair(
        server_factory=lambda odcid: QuicConnection(
            configuration=server_configuration(), original_destination_connection_id=b"\x01" * 8,
            entropy=seeded_entropy(40),
        )
    )
    pair.connect()
    pair.drive(duration=10)
    closed = pair.events_of("client", events.ConnectionTerminated)
    assert closed[0].error_code == ErrorCode.TRANSPORT_PARAMETER_ERROR
    assert "original_destination_connection_id" in closed[0].reason_phrase


def test_unexpected_retry_source_connection_id_is_a_transport_parameter_error():
    pair = Pair(
        server_factory=lambda odcid: QuicConnection(
            configuration=server_configuration(),
            original_destination_connection_id=odcid,
            retry_source_connection_id=b"\x02" * 8,
            entropy=seeded_entropy(41),
        )
    )
    pair.connect()
    pair.drive(duration=10)
    assert pair.events_of("client", events.ConnectionTerminated)[0].error_code == ErrorCode.TRANSPORT_PARAMETER_ERROR


def test_idle_timeout_uses_the_smaller_advertised_value():
    pair = Pair(client_config=client_configuration(idle_timeout=5.0, **NO_PROBES),
                server_config=server_configuration(idle_timeout=2.0, **NO_PROBES))
    pair.handshake()
    pair.drive(duration=30, quiet_gap=100)
    terminated = event_times(pair, events.ConnectionTerminated)
    assert [who for _, who in terminated] == ["client", "server"]
    client_last_rx = max(e[0] for e in pair.log if e[2] == "received" and e[1] == "client")
    assert terminated[0][0] == pytest.approx(client_last_rx + 2.0)


# -- Retry, Version Negotiation, v2 -------------------------------------------------------


def test_retry_through_the_endpoint():
    pair, endpoint = endpoint_pair(retry=True)
    pair.connect()
    assert pair.drive_until(lambda: pair.client.handshake_complete and pair.server.handshake_complete)
    assert endpoint.stats["retry"] == 2  # both datagrams of the first flight
    client = pair.client
    assert client._retry_received and client._token
    server = pair.server.connection
    assert server._retry_source_cid == client._retry_source_cid
    assert server.original_destination_connection_id == client.original_destination_connection_id
    # RFC 9000 §8.1: the Retry token validated the address: no 3x limit.
    assert server._path.validated
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"after retry", end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"after retry"


def test_retry_with_a_bad_integrity_tag_is_ignored():
    def corrupt(data):
        return False

    pair, endpoint = endpoint_pair(retry=True)
    original = pair.client._on_retry
    seen = []

    def on_retry(header, view, now):
        seen.append(1)
        bad = bytearray(view)
        bad[-1] ^= 1
        return original(header, memoryview(bytes(bad)), now)

    pair.client._on_retry = on_retry
    pair.connect()
    pair.drive(duration=3)
    assert seen and not pair.client._retry_received
    assert not pair.client.handshake_complete


def test_version_negotiation_moves_the_client_to_a_common_version():
    pair, endpoint = endpoint_pair(server_configuration(supported_versions=[QUIC_V1]))
    pair.client_config.supported_versions = [QUIC_V2, QUIC_V1]
    pair.client = QuicConnection(configuration=client_configuration(supported_versions=[QUIC_V2, QUIC_V1]),
                                 entropy=seeded_entropy(42))
    pair.connect()
    assert pair.drive_until(lambda: pair.client.handshake_complete and pair.server.handshake_complete)
    assert endpoint.stats["version_negotiation"] == 2
    assert pair.client.version == QUIC_V1 == pair.server.version


def test_version_negotiation_without_a_common_version_terminates():
    pair, endpoint = endpoint_pair(server_configuration(supported_versions=[QUIC_V1]))
    pair.client = QuicConnection(configuration=client_configuration(supported_versions=[QUIC_V2]),
                                 entropy=seeded_entropy(43))
    pair.connect()
    pair.drive(duration=5)
    closed = pair.events_of("client", events.ConnectionTerminated)
    assert closed and closed[0].error_code == ErrorCode.VERSION_NEGOTIATION_ERROR
    assert pair.client.state == QuicConnectionState.TERMINATED


def test_version_negotiation_listing_our_version_is_ignored():
    from pyquic.packet import encode_version_negotiation

    client = QuicConnection(configuration=client_configuration(), entropy=seeded_entropy(44))
    client.connect(("1.2.3.4", 443), now=0.0)
    client.datagrams_to_send(now=0.0)
    vn = encode_version_negotiation(client.host_cid, client.original_destination_connection_id, [QUIC_V1, QUIC_V2])
    client.receive_datagram(vn, ("1.2.3.4", 443), now=0.01)
    assert client.version == QUIC_V1 and client.state == QuicConnectionState.FIRSTFLIGHT
    assert client.next_event() is None


@pytest.mark.parametrize("versions", [[QUIC_V2], [QUIC_V2, QUIC_V1]])
def test_quic_v2_handshake_and_data(versions):
    pair = Pair(
        client_config=client_configuration(supported_versions=versions),
        # A server preferring v1 would take a client offering both to v1
        # (compatible negotiation: tests/test_quic_version_negotiation.py).
        server_config=server_configuration(supported_versions=[QUIC_V2, QUIC_V1]),
    )
    pair.handshake()
    assert pair.client.version == QUIC_V2 == pair.server.version
    assert pair.upload(b"v2" * 5000) == b"v2" * 5000


# -- anti-amplification -----------------------------------------------------------------


def test_server_sends_at_most_three_times_what_it_received_before_validation():
    pair = Pair()
    # Only the client's first flight arrives; everything later is lost.
    pair.client_to_server.drop_nth = set(range(2, 100))
    pair.connect()
    pair.drive(duration=8)
    received = 2 * 1200
    assert 0 < pair.bytes_sent["server"] <= 3 * received
    assert not pair.server._path.validated


# -- secrets log and qlog -------------------------------------------------------------------


def test_secrets_log_file_gets_nss_lines():
    import io

    log = io.StringIO()
    pair = Pair(client_config=client_configuration(secrets_log_file=log))
    pair.handshake()
    labels = [line.split()[0] for line in log.getvalue().splitlines()]
    assert labels == [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] or sorted(labels) == sorted(
        ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
         "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"] + [l for l in labels if l == "EXPORTER_SECRET"]
    )


def test_qlog_directory_gets_one_json_seq_file_per_connection():
    import json
    import os

    with tempfile.TemporaryDirectory() as directory:
        pair = Pair(
            client_config=client_configuration(qlog_dir=directory),
            server_config=server_configuration(qlog_dir=directory),
        )
        pair.handshake()
        pair.drive()
        pair.client.close()
        pair.drive()
        files = sorted(os.listdir(directory))
        assert files == [pair.client.original_destination_connection_id.hex() + ".sqlog"] * 1 or len(files) == 1
        text = open(os.path.join(directory, files[0])).read()
        records = [json.loads(r) for r in text.split("\x1e") if r.strip()]
        assert records[0]["qlog_format"] == "JSON-SEQ"
        assert records[0]["trace"]["common_fields"]["ODCID"] == pair.client.original_destination_connection_id.hex()
        names = {r["name"] for r in records[1:]}
        assert {"transport:packet_sent", "transport:packet_received", "recovery:metrics_updated"} <= names
        assert all(r["time"] >= 0 for r in records[1:])


def test_qlog_records_a_timeout_at_the_time_it_struck():
    import json
    import os

    with tempfile.TemporaryDirectory() as directory:
        client = QuicConnection(configuration=client_configuration(qlog_dir=directory, handshake_timeout=5.0,
                                                                   idle_timeout=60.0), entropy=seeded_entropy(3))
        client.connect(SERVER_ADDR, now=100.0)
        client.datagrams_to_send(100.0)
        while (timer := client.get_timer()) is not None:  # nobody answers
            client.handle_timer(timer)
            client.datagrams_to_send(timer)
        (name,) = os.listdir(directory)
        records = [json.loads(r) for r in open(os.path.join(directory, name)).read().split("\x1e") if r.strip()]
    closed = records[-1]
    assert closed["name"] == "connectivity:connection_closed" and closed["data"]["reason"] == "Handshake timeout"
    assert closed["time"] == 5000.0  # ms after connect(), not the last probe's time (3 s)
    assert records[-2]["time"] < 4000.0


# -- interop with aioquic's connection object (in memory) ----------------------------------


class AioquicWrapper:
    def __init__(self, conn):
        self.conn = conn

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def connect(self, addr, now):
        self.conn.connect(addr, now=now)

    def receive_datagram(self, data, addr, now, ecn=0):  # aioquic's connection takes no ECN codepoint
        self.conn.receive_datagram(data, addr, now=now)

    def datagrams_to_send(self, now):
        return self.conn.datagrams_to_send(now=now)

    def handle_timer(self, now):
        self.conn.handle_timer(now=now)

    @property
    def handshake_complete(self):
        return self.conn._handshake_complete


@pytest.fixture(scope="module")
def pem_files():
    from tests.pki import make_test_pki

    with tempfile.TemporaryDirectory() as directory:
        yield make_test_pki().write_pem(directory)


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
def test_our_client_with_aioquic_server_in_memory(pem_files, version):
    from aioquic.quic import events as aev
    from aioquic.quic.configuration import QuicConfiguration as AConfig
    from aioquic.quic.connection import QuicConnection as AConn

    sc = AConfig(is_client=False, alpn_protocols=["hq-test"], supported_versions=[QUIC_V1, QUIC_V2])
    sc.load_cert_chain(pem_files["server_chain"], pem_files["server_key"])
    pair = Pair(
        client_config=client_configuration(supported_versions=[version]),
        server_factory=lambda odcid: AioquicWrapper(AConn(configuration=sc, original_destination_connection_id=odcid)),
    )
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"ping" * 20000, end_stream=True)
    pair.drive()
    got = b"".join(e.data for e in pair.server_events if isinstance(e, aev.StreamDataReceived))
    assert got == b"ping" * 20000
    pair.server.send_stream_data(sid, got[::-1], end_stream=True)
    pair.drive()
    assert pair.received("client", sid) == got[::-1]
    pair.client.close(error_code=42, reason_phrase="done")
    pair.drive()
    closed = [e for e in pair.server_events if isinstance(e, aev.ConnectionTerminated)]
    assert closed[0].error_code == 42 and closed[0].frame_type is None


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
def test_aioquic_client_with_our_server_in_memory(pem_files, version):
    from aioquic.quic import events as aev
    from aioquic.quic.configuration import QuicConfiguration as AConfig
    from aioquic.quic.connection import QuicConnection as AConn

    cc = AConfig(is_client=True, alpn_protocols=["hq-test"], server_name="localhost", supported_versions=[version])
    cc.load_verify_locations(pem_files["ca"])
    pair = Pair(client=AioquicWrapper(AConn(configuration=cc)),
                server_config=server_configuration(supported_versions=[QUIC_V1, QUIC_V2]))
    pair.client.connect(("10.0.0.2", 443), now=0.0)
    assert pair.drive_until(lambda: pair.server is not None and pair.client.handshake_complete
                            and pair.server.handshake_complete)
    assert pair.server.version == version
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"hello" * 30000, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"hello" * 30000
    pair.server.send_stream_data(sid, b"world" * 30000, end_stream=True)
    pair.drive()
    got = b"".join(e.data for e in pair.client_events if isinstance(e, aev.StreamDataReceived))
    assert got == b"world" * 30000
    pair.server.close(error_code=7, reason_phrase="bye")
    pair.drive()
    closed = [e for e in pair.client_events if isinstance(e, aev.ConnectionTerminated)]
    assert closed[0].error_code == 7


def test_session_resumption_with_a_ticket():
    tickets = []
    server_config = server_configuration()
    pair = Pair(server_config=server_config)
    pair.client = QuicConnection(configuration=pair.client_config, session_ticket_handler=tickets.append,
                                 entropy=seeded_entropy(45))
    pair.handshake()
    pair.drive()
    assert len(tickets) == 1 and tickets[0].transport_parameters is None or len(tickets) == 1
    resumed = Pair(client_config=client_configuration(session_ticket=tickets[0]), server_config=server_config)
    resumed.handshake()
    assert resumed.client_events[1] == events.HandshakeCompleted("hq-test", False, True)
    assert resumed.server_events[1].session_resumed


@pytest.mark.parametrize("seed", range(4))
def test_every_datagram_with_a_client_initial_is_padded(seed):
    from pyquic.packet import PacketType, split_datagram

    seen = {"client": [], "server": []}

    def watch(who):
        def check(data):
            packets = split_datagram(data, 8).packets
            if any(h.packet_type is PacketType.INITIAL for h, _ in packets):
                seen[who].append(len(data))
            return False

        return check

    pair = Pair(seed=seed)
    pair.client_to_server.drop_if = watch("client")
    pair.server_to_client.drop_if = watch("server")
    pair.client_to_server.loss = pair.server_to_client.loss = 0.2
    pair.connect()
    pair.drive_until(lambda: pair.server is not None and pair.client.handshake_confirmed, duration=30)
    # RFC 9000 §14.1: the client pads every Initial-carrying datagram; the
    # server those with ack-eliciting Initials (its ACK-only ones may be small).
    assert seen["client"] and min(seen["client"]) >= 1200
    assert seen["server"]


def test_application_close_during_the_handshake_becomes_application_error():
    pair = Pair()
    pair.connect()
    pair.drive_until(lambda: pair.server is not None)
    # The client closes before the handshake is done: the close goes in an
    # Initial packet, where an application close is APPLICATION_ERROR (RFC 9000 §10.2.3).
    pair.client.close(error_code=99, reason_phrase="secret reason")
    pair.drive(duration=10)
    closed = pair.events_of("server", events.ConnectionTerminated)
    assert closed and closed[0].error_code == ErrorCode.APPLICATION_ERROR and closed[0].reason_phrase == ""
    assert pair.events_of("client", events.ConnectionTerminated) == [
        events.ConnectionTerminated(99, None, "secret reason")
    ]


def test_handshake_crypto_waits_for_the_congestion_window():
    # RFC 9002 §7: CRYPTO in Initial and Handshake packets is congestion
    # controlled like stream data.  A server whose window holds one datagram
    # sends one datagram of its flight per round trip, not the whole flight.
    pair = Pair()

    def narrow_server(odcid: bytes) -> QuicConnection:
        server = pair._make_server(odcid)
        server._loss.cc.congestion_window = 1200
        return server

    pair._server_factory = narrow_server
    pair.handshake()
    first_round = [entry for entry in pair.log if entry[1] == "server" and entry[2] == "sent" and entry[0] <= 0.05 + 1e-9]
    assert len(first_round) == 1
    # The unconstrained flight is longer than that, so the window did hold something back.
    wide = Pair()
    wide.handshake()
    wide_round = [entry for entry in wide.log if entry[1] == "server" and entry[2] == "sent" and entry[0] <= 0.05 + 1e-9]
    assert len(wide_round) > 1
    assert pair.client.handshake_complete and pair.server.handshake_complete
