# Zero-length connection IDs (RFC 9000 §5.1, §19.15, §19.16): a client may
# use one (its socket tells its connection apart); it then issues no more
# IDs and a RETIRE_CONNECTION_ID sent to it is a PROTOCOL_VIOLATION, as a
# NEW_CONNECTION_ID from a peer with a zero-length ID is.  Our server serves
# such clients; its own IDs stay 4..20 bytes (the endpoint routes by them).
# In memory, then our zero-length client against aioquic's and ngtcp2's
# servers, and ngtcp2's client with --scid= (zero-length) against ours.
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


def test_a_server_keeps_ids_it_can_route_by():
    with pytest.raises(UsageError):
        QuicConfiguration(is_client=False, connection_id_length=0)


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


async def test_ngtcp2s_zero_length_client_against_our_server(files, tmp_path):
    site = write_h3_site(tmp_path / "www", len(BODY))
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    config.load_cert_chain(files["server_chain"], files["server_key"])
    server = await serve_h3("127.0.0.1", 0, configuration=config, handler=OurSite(site["root"]))
    seen: set = set()

    async def watch() -> None:  # the server connection's view of the client's ID, while it lives
        while True:
            seen.update(p.quic.peer_cid for p in server.connections if p.quic.handshake_complete)
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
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
