# Zero-length connection IDs (RFC 9000 §5.1, §19.15, §19.16): a client may
# use one (its socket tells its connection apart); it then issues no more
# IDs and a RETIRE_CONNECTION_ID sent to it is a PROTOCOL_VIOLATION, as a
# NEW_CONNECTION_ID from a peer with a zero-length ID is.  A server may use
# them too: its endpoint then routes by the client's address (and sends no
# stateless reset: it announced no token), so a client that moves is a
# stranger.  In memory, then our zero-length client against aioquic's and
# ngtcp2's servers, ngtcp2's client with --scid= (zero-length) against ours,
# and aioquic's, qh3's and ngtcp2's clients against our zero-length server.
from __future__ import annotations

import asyncio

import pytest

from pyquic.asyncio import connect
from pyquic.asyncio.h3 import connect_h3, serve_h3
from pyquic.config import QuicConfiguration
from pyquic.connection import QuicConnection
from pyquic.connection_ids import LocalConnectionIds
from pyquic.errors import ErrorCode, TransportError, UsageError
from pyquic.frames import NewConnectionId
from tests.h3_peers import run_h3_client, start_h3_server, write_h3_site
from tests.quic_interop_cases import client_config, expect, request
from tests.quic_pair import Pair, client_configuration, seeded_entropy
from tests.quic_peers import pki_files, start_server
from tests.test_h3_interop import OurSite

TIMEOUT = 30.0
BODY = b"z" * 200_000


def test_a_client_with_zero_length_ids_exchanges_data_both_ways():
    config = client_configuration(connection_id_length=0)
    pair = Pair(client_config=config, client=QuicConnection(configuration=config, entropy=seeded_entropy(3)))
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, BODY, end_stream=True)
    pair.server.send_stream_data(1, BODY, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == BODY and pair.received("client", 1) == BODY
    assert pair.client.host_cid == b"" and pair.server.peer_cid == b""
    assert "new_connection_id" not in pair.client.stats.frames_sent  # no more IDs to give
    assert pair.client.stats.packets_dropped == 0 and pair.server.stats.packets_dropped == 0


def test_the_frames_that_make_no_sense_with_a_zero_length_id_are_violations():
    ours = LocalConnectionIds(0, b"k" * 32, seeded_entropy(1))
    ours.replenish()
    assert ours.host_cid == b"" and ours.pending == []
    with pytest.raises(TransportError) as err:
        ours.on_retire(0, b"")
    assert err.value.code == ErrorCode.PROTOCOL_VIOLATION
    # The server's view of such a client: it may not issue IDs.
    config = client_configuration(connection_id_length=0)
    pair = Pair(client_config=config, client=QuicConnection(configuration=config, entropy=seeded_entropy(4)))
    pair.handshake()
    with pytest.raises(TransportError) as err:
        pair.server._peer_cids.on_new_connection_id(NewConnectionId(1, 0, b"\x01" * 8, b"t" * 16))
    assert err.value.code == ErrorCode.PROTOCOL_VIOLATION


def test_a_server_with_zero_length_ids_routes_by_address():
    from tests.quic_pair import CLIENT_ADDR, endpoint_pair, server_configuration

    pair, endpoint = endpoint_pair(server_configuration(connection_id_length=0))
    pair.handshake()
    sid = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(sid, BODY, end_stream=True)
    pair.drive()
    server = pair.server.connection
    assert pair.received("server", sid) == BODY
    assert pair.client.peer_cid == b"" and server.host_cid == b""
    assert pair.client._peer_params.stateless_reset_token is None  # a reset could not name the connection
    assert endpoint._routes.get((CLIENT_ADDR, None)) is server
    # A datagram from elsewhere finds no connection, and draws no reset.
    pair.client.send_ping(1)
    (datagram, _), *_ = pair.client.datagrams_to_send(now=pair.now)
    assert endpoint.receive_datagram(datagram, ("10.9.9.9", 1), now=pair.now) is None
    assert endpoint.stateless_datagrams() == [] and endpoint.stats["stateless_reset"] == 0
    with pytest.raises(UsageError, match="connection IDs"):
        from pyquic import preferred_address

        preferred_address.offer([("192.0.2.1", 443)], server._local_cids)  # nothing to move with


def test_a_zero_length_server_that_sends_retry():
    from tests.quic_pair import endpoint_pair, server_configuration

    pair, endpoint = endpoint_pair(server_configuration(connection_id_length=0), retry="always")
    pair.handshake()
    assert endpoint.stats["retry"] >= 1 and pair.client.handshake_complete and pair.client.peer_cid == b""


def test_two_clients_of_a_zero_length_server_are_told_apart_by_address():
    from tests.quic_pair import endpoint_pair, server_configuration

    first, endpoint = endpoint_pair(server_configuration(connection_id_length=0))
    first.handshake()
    second = Pair(server_factory=lambda odcid: first.server, seed=9)
    second.client_addr = ("10.0.0.5", 5555)
    second.handshake()
    for pair in (first, second):
        sid = pair.client.get_next_available_stream_id()
        pair.client.send_stream_data(sid, sid.to_bytes(1, "big") * 1000 + bytes([id(pair) % 256]), end_stream=True)
        pair.drive()
    assert len(endpoint.connections) == 2
    assert {c.peer_address for c in endpoint.connections} == {first.client_addr, ("10.0.0.5", 5555)}


# -- real peers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


# Not qh3 2.1.0: its server closes with TRANSPORT_PARAMETER_ERROR
# "initial_source_connection_id does not match" when that parameter is the
# empty ID the client's packets carry (aioquic, from which it forked, and
# ngtcp2 accept it).
@pytest.mark.parametrize("impl", ["aioquic"])
async def test_our_zero_length_client_against_their_servers(files, impl):
    server = start_server(impl, files)
    try:
        async with connect("127.0.0.1", server.port,
                           configuration=client_config(files, connection_id_length=0)) as proto:
            assert await asyncio.wait_for(request(proto, "echo", len(BODY)), TIMEOUT) == expect(len(BODY))
            assert proto.quic.host_cid == b""
    finally:
        server.stop()


async def test_our_zero_length_client_against_ngtcp2(files, tmp_path):
    site = write_h3_site(tmp_path / "www", len(BODY))
    server = start_h3_server("ngtcp2", site["root"], files)
    try:
        config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost",
                                   connection_id_length=0)
        config.load_verify_locations(cafile=str(files["ca"]))
        async with connect_h3("127.0.0.1", server.port, configuration=config) as client:
            client.authority = f"localhost:{server.port}"
            response = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
            assert response.status == 200 and len(response.content) == len(BODY)
    finally:
        server.stop()


async def our_h3_server(root, files, **config_kw):
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"], **config_kw)
    config.load_cert_chain(files["server_chain"], files["server_key"])
    return await serve_h3("127.0.0.1", 0, configuration=config, handler=OurSite(root))


def watch(server, read) -> tuple[set, asyncio.Future]:
    """What read(connection) says of each server connection with a complete
    handshake, gathered while they live (cancel the future when done)."""
    seen: set = set()

    async def poll() -> None:
        while True:
            seen.update(read(p.quic) for p in server.connections if p.quic.handshake_complete)
            await asyncio.sleep(0.005)

    return seen, asyncio.ensure_future(poll())


# Not qh3 2.1.0's client: the same check as its server's (above) closes with
# TRANSPORT_PARAMETER_ERROR "initial_source_connection_id does not match".
@pytest.mark.parametrize("impl", ["aioquic", "ngtcp2"])
async def test_their_clients_against_our_zero_length_server(files, tmp_path, impl):
    site = write_h3_site(tmp_path / "www", len(BODY))
    server = await our_h3_server(site["root"], files, connection_id_length=0)
    ids, watcher = watch(server, lambda quic: quic.host_cid)
    try:
        port = server.local_address[1]
        urls = [f"https://localhost:{port}/big.bin", f"https://localhost:{port}/small.txt"]
        results = await asyncio.to_thread(run_h3_client, impl, urls, tmp_path / "dl", files, timeout=TIMEOUT)
        for r in results:
            assert r["ok"] and r["sha256"] == site["sha256"][r["url"].rsplit("/", 1)[1]], r
        assert ids == {b""}  # every packet of theirs came to a zero-length ID
    finally:
        watcher.cancel()
        server.close()
        await server.wait_closed()


async def test_ngtcp2s_zero_length_client_against_our_server(files, tmp_path):
    site = write_h3_site(tmp_path / "www", len(BODY))
    server = await our_h3_server(site["root"], files)
    seen, watcher = watch(server, lambda quic: quic.peer_cid)  # the server's view of the client's ID
    try:
        port = server.local_address[1]
        (result,) = await asyncio.to_thread(run_h3_client, "ngtcp2", f"https://localhost:{port}/big.bin",
                                            tmp_path / "dl", files, timeout=TIMEOUT, extra_args=["--scid="])
        assert result["ok"] and result["sha256"] == site["sha256"]["big.bin"], result
        assert seen == {b""}
    finally:
        watcher.cancel()
        server.close()
        await server.wait_closed()
