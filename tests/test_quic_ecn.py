# ECN (RFC 9000 §13.4, RFC 9002 §7.1).  On the simulated clock, with paths
# that carry the marks, bleach them, turn some into CE, or drop marked
# packets: a connection counts the codepoints it receives per packet number
# space and reports them in ACK_ECN frames, validates that its own ECT(0)
# marks arrive (and stops marking when they do not), and answers CE with a
# congestion response and no loss.  Then over real sockets on loopback: the
# UDP layer sets and reads the IP ECN bits (IPv4, IPv6 and v4-mapped on a
# dual-stack socket, single sends and GSO batches), and two pyquic
# endpoints validate ECN end to end.  The capture evidence against ngtcp2
# is the interop runner's ecn case (interop/results).
from __future__ import annotations

import asyncio

import pytest

from pyquic.ack import ECN_CE, ECN_ECT0
from pyquic.asyncio.udp import UdpSocket, create_socket
from pyquic.recovery import LossRecovery, PacketNumberSpace, SentPacket
from tests.quic_pair import Pair, client_configuration, server_configuration

APP = PacketNumberSpace.APPLICATION
SIZE = 300_000


def transfer(client_to_server=None, server_to_client=None, **config):
    pair = Pair(client_config=client_configuration(**config), server_config=server_configuration(**config))
    pair.client_to_server.ecn = client_to_server
    pair.server_to_client.ecn = server_to_client
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"e" * SIZE, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"e" * SIZE
    return pair


def reported(conn) -> tuple[int, int, int]:
    """The ECN counts the peer last reported for our 1-RTT packets."""
    return conn.loss._spaces[APP].ecn_counts


def test_marks_that_arrive_are_counted_reported_and_validated():
    carry = lambda codepoint: codepoint  # noqa: E731
    pair = transfer(carry, carry)
    for conn in (pair.client, pair.server):
        assert conn.ecn_codepoint == ECN_ECT0 and not conn.loss.ecn_failed
        ect0, ect1, ce = reported(conn)
        assert ect0 > 0 and ect1 == ce == 0
    # The client sent the bulk: the server counted each of its 1-RTT packets.
    assert pair.server._spaces[APP].ack.ecn_counts[0] >= SIZE // 1500
    assert reported(pair.client)[0] >= SIZE // 1500


def test_a_path_that_bleaches_the_marks_fails_validation_and_marking_stops():
    bleach = lambda codepoint: 0  # noqa: E731
    pair = transfer(bleach, bleach)
    for conn in (pair.client, pair.server):
        assert conn.loss.ecn_failed and conn.ecn_codepoint == 0
    # From then on the packets go unmarked (nothing claims ECT any more).
    sent = list(pair.client.loss._spaces[APP].sent.values())
    assert all(not p.ecn for p in sent)


def test_ce_is_a_congestion_signal_without_loss():
    carry = lambda codepoint: codepoint  # noqa: E731
    calm = transfer(carry, carry)
    count = [0]

    def every_fifth_ce(codepoint: int) -> int:
        count[0] += 1
        return ECN_CE if codepoint and count[0] % 5 == 0 else codepoint

    marked = transfer(every_fifth_ce, carry)
    client = marked.client
    assert reported(client)[2] > 0  # the server reported CE
    assert not client.loss.ecn_failed and client.stats.packets_lost == 0
    # Each CE round cut the window: the transfer ends with less than the calm one.
    assert client.loss.cc.congestion_window < calm.client.loss.cc.congestion_window
    # The receiver acknowledged CE at once (RFC 9000 §13.2.1) and counted it.
    assert marked.server._spaces[APP].ack.ecn_counts[2] == reported(client)[2]


def test_ecn_off_sends_no_marks_and_claims_none():
    carry = lambda codepoint: codepoint  # noqa: E731
    pair = transfer(carry, carry, ecn=False)
    assert pair.client.ecn_codepoint == 0 and pair.server._spaces[APP].ack.ecn_counts == [0, 0, 0]


def test_marked_packets_that_all_vanish_stop_the_marking():
    # RFC 9000 §13.4.2.1: ten ECT(0) packets lost before any is acknowledged
    # look like a path that drops marked packets.
    loss = LossRecovery(is_client=True)
    loss.on_handshake_confirmed(0.0)
    for pn in range(13):
        loss.on_packet_sent(SentPacket(APP, pn, 0.0, 1200, ecn=pn < 10))
    outcome = loss.on_ack_received(APP, [(10, 13)], 0.0, 0.1)  # the unmarked ones, no ECN counts
    assert len(outcome.lost) == 10 and loss.ecn_failed


# -- the socket layer ----------------------------------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, int]] = []

    def datagram_received(self, data, addr, ecn=0) -> None:
        self.got.append((bytes(data), ecn))

    def datagram_batch_received(self, data, segment_size, addr, ecn=0) -> None:
        for start in range(0, len(data), segment_size):
            self.got.append((bytes(data[start:start + segment_size]), ecn))

    def datagrams_done(self) -> None:
        pass

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


async def until(predicate, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.mark.parametrize("receiver_host,sender_host,dest", [
    ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
    ("::1", "::1", "::1"),
    ("::", "::", "::ffff:127.0.0.1"),  # dual-stack both sides, an IPv4 peer
])
async def test_the_udp_layer_sets_and_reads_the_ecn_bits(receiver_host, sender_host, dest):
    rx_sink, tx_sink = Collect(), Collect()
    rx = UdpSocket(create_socket(receiver_host, 0), rx_sink, ecn=True)
    tx = UdpSocket(create_socket(sender_host, 0), tx_sink, ecn=True)
    try:
        port = rx.getsockname()[1]
        addr = (dest, port, 0, 0) if ":" in dest else (dest, port)
        tx.send(b"plain", addr)
        tx.send(b"ect0", addr, ECN_ECT0)
        tx.send(b"ce", addr, ECN_CE)
        tx.send_batch(b"g" * 3000, 1000, addr, ECN_ECT0)  # a GSO batch keeps the mark
        await until(lambda: len(rx_sink.got) >= 6)
        got = dict((data[:5], ecn) for data, ecn in rx_sink.got)
        assert got[b"plain"] == 0 and got[b"ect0"] == ECN_ECT0 and got[b"ce"] == ECN_CE
        assert [ecn for data, ecn in rx_sink.got if data.startswith(b"g")] == [ECN_ECT0] * 3
    finally:
        rx.close()
        tx.close()


async def test_two_pyquic_endpoints_validate_ecn_over_real_sockets(tmp_path):
    from pyquic.asyncio import connect, serve
    from pyquic.config import QuicConfiguration
    from tests.quic_peers import pki_files

    files = pki_files(tmp_path)
    server_config = QuicConfiguration(is_client=False, alpn_protocols=["ecn-test"])
    server_config.load_cert_chain(files["server_chain"], files["server_key"])

    async def echo(reader, writer):
        data = await reader.read()
        writer.write(data)
        writer.write_eof()

    server = await serve("127.0.0.1", 0, configuration=server_config, stream_handler=echo)
    try:
        config = QuicConfiguration(is_client=True, alpn_protocols=["ecn-test"], server_name="localhost")
        config.load_verify_locations(cafile=str(files["ca"]))
        async with connect("127.0.0.1", server.local_address[1], configuration=config) as proto:
            reader, writer = await proto.create_stream()
            writer.write(b"x" * SIZE)
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == b"x" * SIZE
            client = proto._quic
            server_conn = server.connections[0]._quic
            for conn in (client, server_conn):
                assert not conn.loss.ecn_failed and conn.ecn_codepoint == ECN_ECT0
                assert reported(conn)[0] > 0  # the peer saw our ECT(0) marks and said so
            assert server_conn._spaces[APP].ack.ecn_counts[0] >= SIZE // 1500
    finally:
        server.close()
        await server.wait_closed()
