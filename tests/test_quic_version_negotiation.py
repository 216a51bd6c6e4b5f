# QUIC version negotiation (RFC 9368, RFC 9369 §4) between v1 and v2 on a
# simulated clock, with what each packet on the wire says: a server that
# prefers v2 answers a v1 first flight in v2 (no extra round trip) and the
# client follows; a server that prefers v1 takes a v2 client to v1; nothing
# changes when the client does not offer the other version; 0-RTT stays in
# the original version while the rest moves; a Version Negotiation packet
# and the version_information checks (the downgrade rules) on both sides.
# The same against aioquic's server and client in their own processes.
from __future__ import annotations

import asyncio

import pytest

from pyquic import events
from pyquic.connection import QuicConnection
from pyquic.errors import ErrorCode, TransportError
from pyquic.packet import PacketType, split_datagram
from pyquic.transport_params import VersionInformation
from pyquic.version_negotiation import Verdict, Versions
from pyquic.versions import QUIC_V1, QUIC_V2
from tests.quic_pair import Pair, client_configuration, endpoint_pair, seeded_entropy, server_configuration
from tests.quic_peers import assert_all_ok, pki_files, run_client, start_server
from tests.udp_relay import UdpRelay

RTT = 0.1
SIZE = 30_000


class Wire:
    """Every long-header packet each side sent: (ptype, version), in order."""

    def __init__(self, pair: Pair) -> None:
        self.client: list[tuple[PacketType, int]] = []
        self.server: list[tuple[PacketType, int]] = []
        pair.client_to_server.drop_if = lambda d: self._record(self.client, d)
        pair.server_to_client.drop_if = lambda d: self._record(self.server, d)

    @staticmethod
    def _record(into: list, datagram: bytes) -> bool:
        for header, _ in split_datagram(datagram, 8).packets:
            if header.version is not None:
                into.append((header.packet_type, header.version))
        return False  # nothing is lost

    @staticmethod
    def versions(packets: list, ptype: PacketType) -> list[int]:
        return [v for t, v in packets if t is ptype]


def run(client_versions, server_versions, original=None):
    """A handshake and 30 kB through a server endpoint (which answers
    versions it does not speak with Version Negotiation)."""
    pair, _ = endpoint_pair(server_configuration(supported_versions=server_versions))
    pair.client = QuicConnection(configuration=client_configuration(supported_versions=client_versions,
                                                                     original_version=original),
                                 entropy=seeded_entropy(31))
    wire = Wire(pair)
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, b"v" * SIZE, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == b"v" * SIZE
    return pair, wire


def test_a_server_preferring_v2_upgrades_a_v1_first_flight_without_a_round_trip():
    pair, wire = run([QUIC_V2, QUIC_V1], [QUIC_V2, QUIC_V1], original=QUIC_V1)
    assert pair.client.version == QUIC_V2 == pair.server.version
    # The client's first Initial is v1; the server answers in v2 only; the
    # client follows from its next packet on.
    assert wire.client[0] == (PacketType.INITIAL, QUIC_V1)
    assert set(v for _, v in wire.server) == {QUIC_V2}
    assert set(Wire.versions(wire.client, PacketType.HANDSHAKE)) == {QUIC_V2}
    first_v2 = next(i for i, (_, v) in enumerate(wire.client) if v == QUIC_V2)
    assert all(v == QUIC_V2 for _, v in wire.client[first_v2:])
    # One round trip, as for a plain v1 handshake: the server's first flight
    # answered the client's first flight.
    assert pair.client.stats.packets_dropped == 0 and pair.server.stats.packets_dropped == 0
    assert pair.client._versions.negotiated and pair.server._versions.negotiated


def test_a_server_preferring_v1_takes_a_v2_client_to_v1():
    pair, wire = run([QUIC_V2, QUIC_V1], [QUIC_V1, QUIC_V2], original=QUIC_V2)
    assert pair.client.version == QUIC_V1 == pair.server.version
    assert wire.client[0] == (PacketType.INITIAL, QUIC_V2)
    assert set(v for _, v in wire.server) == {QUIC_V1}


@pytest.mark.parametrize("client_versions,expected", [([QUIC_V1], QUIC_V1), ([QUIC_V2], QUIC_V2)])
def test_no_change_when_the_client_offers_no_other_version(client_versions, expected):
    pair, wire = run(client_versions, [QUIC_V2, QUIC_V1] if expected == QUIC_V1 else [QUIC_V1, QUIC_V2])
    assert pair.client.version == expected == pair.server.version
    assert {v for _, v in wire.client + wire.server} == {expected}
    assert not pair.server._versions.negotiated


def test_version_negotiation_then_the_handshake_checks_the_server_list():
    # The server speaks only v1: a v2 client gets a Version Negotiation packet,
    # starts over in v1, and the server's version_information confirms v1 is
    # what the client would have chosen from the full list (no downgrade).
    pair, wire = run([QUIC_V2, QUIC_V1], [QUIC_V1], original=QUIC_V2)
    assert pair.client.version == QUIC_V1 == pair.server.version
    assert QUIC_V1 in pair.client._versions.vn_versions and QUIC_V2 not in pair.client._versions.vn_versions
    # The first flight (two datagrams: the ClientHello with its ML-KEM share)
    # in v2, then v1 only.
    versions = [v for _, v in wire.client]
    restart = versions.index(QUIC_V1)
    assert restart >= 1 and set(versions[:restart]) == {QUIC_V2} and set(versions[restart:]) == {QUIC_V1}


def test_0rtt_stays_in_the_original_version_while_the_handshake_moves_to_v2():
    server_config = server_configuration(supported_versions=[QUIC_V2, QUIC_V1], max_early_data=0xFFFFFFFF)
    kw = dict(supported_versions=[QUIC_V2, QUIC_V1], original_version=QUIC_V1)
    tickets: list = []
    first = Pair(server_config=server_config, rtt=RTT)
    first.client = QuicConnection(configuration=client_configuration(**kw), session_ticket_handler=tickets.append,
                                  entropy=seeded_entropy(30))
    first.handshake()
    first.drive()
    assert tickets and first.client.version == QUIC_V2
    pair = Pair(client_config=client_configuration(session_ticket=tickets[-1], enable_early_data=True, **kw),
                server_config=server_config, rtt=RTT)
    wire = Wire(pair)
    pair.connect()
    sid = pair.client.get_next_available_stream_id()
    request = bytes(range(256)) * 20  # more than the first datagram holds: 0-RTT packets after it too
    pair.client.send_stream_data(sid, request, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == request
    done = [e for e in pair.client_events if isinstance(e, events.HandshakeCompleted)][0]
    assert done.early_data_accepted and done.session_resumed
    assert pair.client.version == QUIC_V2 == pair.server.version
    zero_rtt = Wire.versions(wire.client, PacketType.ZERO_RTT)
    assert len(zero_rtt) >= 2 and set(zero_rtt) == {QUIC_V1}
    assert pair.server.stats.zero_rtt_packets_received == len(zero_rtt)
    assert set(Wire.versions(wire.client, PacketType.HANDSHAKE)) == {QUIC_V2}


# -- the rules, one by one -------------------------------------------------------------------------


def test_a_client_follows_only_a_version_it_offered_and_only_before_the_handshake():
    versions = Versions([QUIC_V1], is_client=True, first=QUIC_V1)
    assert versions.on_packet(PacketType.INITIAL, QUIC_V2) is Verdict.DROP  # not offered
    versions = Versions([QUIC_V1, QUIC_V2], is_client=True, first=QUIC_V1)
    assert versions.on_packet(PacketType.HANDSHAKE, QUIC_V2) is Verdict.DROP  # only an Initial moves us
    assert versions.on_packet(PacketType.INITIAL, QUIC_V2) is Verdict.SWITCH
    versions.handshake_seen = True
    assert versions.on_packet(PacketType.INITIAL, QUIC_V2) is Verdict.DROP  # settled
    versions = Versions([QUIC_V1, QUIC_V2], is_client=True, first=QUIC_V1)
    versions.switch(QUIC_V2)
    assert versions.on_packet(PacketType.INITIAL, QUIC_V1) is Verdict.DROP  # no way back


def test_a_server_after_switching_takes_the_clients_original_initials_and_0rtt():
    versions = Versions([QUIC_V2, QUIC_V1], is_client=False)
    assert versions.on_packet(PacketType.INITIAL, QUIC_V1) is Verdict.ACCEPT
    params = VersionInformation(QUIC_V1, (QUIC_V2, QUIC_V1))
    assert versions.choose(params) == QUIC_V2 and versions.current == QUIC_V2 and versions.original == QUIC_V1
    assert versions.on_packet(PacketType.INITIAL, QUIC_V1) is Verdict.ACCEPT
    assert versions.on_packet(PacketType.ZERO_RTT, QUIC_V1) is Verdict.ACCEPT
    assert versions.on_packet(PacketType.ZERO_RTT, QUIC_V2) is Verdict.DROP
    assert versions.on_packet(PacketType.HANDSHAKE, QUIC_V1) is Verdict.DROP
    versions.handshake_seen = True
    assert versions.on_packet(PacketType.INITIAL, QUIC_V1) is Verdict.DROP


def test_a_server_keeps_the_clients_version_without_its_version_information():
    versions = Versions([QUIC_V2, QUIC_V1], is_client=False)
    versions.on_packet(PacketType.INITIAL, QUIC_V1)
    assert versions.choose(None) == QUIC_V1  # none sent, or unreadable: the connection's own check rejects it
    assert versions.choose(VersionInformation(QUIC_V2, (QUIC_V2,))) == QUIC_V1  # not the Initial's: the check closes


def test_the_server_checks_the_clients_chosen_version():
    versions = Versions([QUIC_V2, QUIC_V1], is_client=False)
    versions.on_packet(PacketType.INITIAL, QUIC_V1)
    with pytest.raises(TransportError) as err:
        versions.check_peer(VersionInformation(QUIC_V2, (QUIC_V2, QUIC_V1)))  # it started in v1
    assert err.value.code == ErrorCode.VERSION_NEGOTIATION_ERROR and "first version" in str(err.value)
    versions.check_peer(VersionInformation(QUIC_V1, (QUIC_V2, QUIC_V1)))
    versions.check_peer(None)  # a client without RFC 9368


def test_the_client_checks_the_servers_version_information():
    switched = Versions([QUIC_V2, QUIC_V1], is_client=True, first=QUIC_V1)
    switched.switch(QUIC_V2)
    for info in (None, VersionInformation(QUIC_V1, (QUIC_V1, QUIC_V2))):
        with pytest.raises(TransportError) as err:
            switched.check_peer(info)
        assert err.value.code == ErrorCode.VERSION_NEGOTIATION_ERROR
    switched.check_peer(VersionInformation(QUIC_V2, (QUIC_V2, QUIC_V1)))
    # After a Version Negotiation listing only v1, a server whose full list
    # has v2 too was downgraded by someone on the path.
    after_vn = Versions([QUIC_V2, QUIC_V1], is_client=True, first=QUIC_V2)
    assert after_vn.on_version_negotiation([QUIC_V1]) == QUIC_V1
    with pytest.raises(TransportError, match="downgrade"):
        after_vn.check_peer(VersionInformation(QUIC_V1, (QUIC_V1, QUIC_V2)))
    after_vn.check_peer(VersionInformation(QUIC_V1, (QUIC_V1,)))


# -- against aioquic (both support v2 and RFC 9368) ---------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


def handshake_line(peer) -> dict:
    peer.wait_for(lambda l: l.get("event") == "handshake", 10, "the handshake")
    return next(line for line in peer.lines if line.get("event") == "handshake")


async def through_tapped_relay(server, client_impl: str, files) -> dict:
    """An echo by ``client_impl`` (v2 preferred, v1 first) through a relay
    that notes the version of every long-header packet each way."""
    seen: dict[str, list] = {"to_server": [], "to_client": []}

    def tap(direction: str, datagram: bytes) -> None:
        for header, _ in split_datagram(datagram, 0).packets:
            if header.version is not None:
                seen[direction].append((header.packet_type, header.version))

    relay = UdpRelay(("127.0.0.1", server.port), tap=tap)
    _, port = await relay.start()
    try:
        results = await asyncio.to_thread(
            run_client, client_impl, port, files, [{"op": "echo", "size": SIZE}],
            extra_args=("--versions", f"{QUIC_V2:#x},{QUIC_V1:#x}", "--original-version", "0x1"))
    finally:
        relay.close()
    assert_all_ok(results, server)
    return seen


def assert_upgraded_on_the_wire(seen: dict) -> None:
    assert seen["to_server"][0] == (PacketType.INITIAL, QUIC_V1)  # the client started in v1
    # The server answers in v2; before it has the whole ClientHello (two
    # datagrams with ML-KEM) it may acknowledge in v1 (RFC 9369 §4).
    down = seen["to_client"]
    upgrade = [v for _, v in down].index(QUIC_V2)
    assert all(p == (PacketType.INITIAL, QUIC_V1) for p in down[:upgrade])
    assert {v for _, v in down[upgrade:]} == {QUIC_V2}
    assert set(Wire.versions(seen["to_server"], PacketType.HANDSHAKE)) == {QUIC_V2}


@pytest.mark.parametrize("peer", ["aioquic", "qh3"])
async def test_our_v1_client_follows_the_peers_server_to_v2(files, peer):
    # aioquic's server (and qh3's, its fork) follows the client's order of
    # preference: v2 first.
    server = start_server(peer, files, extra_args=("--versions", f"{QUIC_V2:#x},{QUIC_V1:#x}"))
    try:
        seen = await through_tapped_relay(server, "pyquic", files)
        assert handshake_line(server)["version"] == QUIC_V2
    finally:
        server.stop()
    assert_upgraded_on_the_wire(seen)


@pytest.mark.parametrize("peer", ["aioquic", "qh3"])
async def test_our_server_preferring_v2_upgrades_the_peers_v1_client(files, peer):
    server = start_server("pyquic", files, extra_args=("--versions", f"{QUIC_V2:#x},{QUIC_V1:#x}"))
    try:
        seen = await through_tapped_relay(server, peer, files)
        assert handshake_line(server)["version"] == QUIC_V2
    finally:
        server.stop()
    assert_upgraded_on_the_wire(seen)
