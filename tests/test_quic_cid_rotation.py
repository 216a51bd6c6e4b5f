# Connection-ID rotation on request (RFC 9000 §5.1.2, §19.15, §19.16), both
# ways: we move to a spare ID of the peer's and retire the old one
# (change_connection_id), and we ask the peer to move off every ID we issued
# (request_connection_id_rotation: fresh IDs with Retire Prior To), which it
# must retire before it counts the new ones.  In memory, then mid-transfer
# against real peers: our client rotating towards aioquic's, qh3's and
# ngtcp2's servers, and our server asking their clients to rotate.
from __future__ import annotations

import asyncio

import pytest

from pyquic.asyncio.h3 import connect_h3, serve_h3
from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError
from tests.h3_peers import run_h3_client, start_h3_server, write_h3_site
from tests.quic_pair import Pair, client_configuration
from tests.quic_peers import pki_files

BODY = bytes(range(256)) * 1000
TIMEOUT = 60.0


def test_the_peer_moves_off_every_id_we_asked_it_to_retire():
    pair = Pair(rtt=0.04)
    pair.handshake()
    pair.drive()
    server, client = pair.server, pair.client
    old = set(server.host_cids)
    limit = client._configuration.active_connection_id_limit
    assert len(old) == limit and client.peer_cid in old
    server.request_connection_id_rotation()
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, BODY, end_stream=True)
    pair.drive()
    assert pair.received("server", sid) == BODY
    assert not old & set(server.host_cids)  # every old ID retired by the client ...
    assert client.peer_cid in server.host_cids and len(server.host_cids) == limit  # ... and as many fresh ones
    assert client.stats.frames_sent.get("retire_connection_id", 0) >= limit
    assert server.stats.packets_dropped == 0 and client.stats.packets_dropped == 0


def test_rotation_twice_and_a_lost_new_connection_id_frame():
    pair = Pair(rtt=0.04)
    pair.handshake()
    pair.drive()
    pair.server.request_connection_id_rotation()
    pair.server_to_client.drop_nth = {pair.server_to_client.sent}  # the first frame of them goes missing
    pair.drive()
    pair.server.request_connection_id_rotation()
    pair.drive()
    sequences = sorted(pair.server._local_cids.by_sequence)
    limit = pair.client._configuration.active_connection_id_limit
    assert sequences[0] >= 2 * limit and len(sequences) == limit  # two full rounds retired
    assert pair.client.peer_cid in pair.server.host_cids


def test_rotation_is_refused_when_it_cannot_work():
    pair = Pair(rtt=0.04)
    pair.connect()
    with pytest.raises(UsageError, match="handshake"):
        pair.client.request_connection_id_rotation()
    zero = Pair(rtt=0.04, client_config=client_configuration(connection_id_length=0))
    zero.handshake()
    with pytest.raises(UsageError, match="non-empty"):
        zero.client.request_connection_id_rotation()


# -- real peers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_h3_site(tmp_path_factory.mktemp("www"), 3_000_000)


@pytest.mark.parametrize("impl", ["aioquic", "qh3", "ngtcp2"])
async def test_our_client_rotates_towards_their_server(files, site, impl):
    server = start_h3_server(impl, site["root"], files)
    try:
        config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
        config.load_verify_locations(cafile=str(files["ca"]))
        async with connect_h3("127.0.0.1", server.port, configuration=config) as client:
            client.authority = f"localhost:{server.port}"
            quic = client.protocol._quic
            download = asyncio.ensure_future(client.get("/big.bin"))
            used = [quic.peer_cid]
            for _ in range(3):  # three moves while the body flows (each once the server gave a spare)
                await asyncio.sleep(0.02)
                for _ in range(200):
                    if client.protocol.change_connection_id():
                        break
                    await asyncio.sleep(0.005)
                used.append(quic.peer_cid)
            response = await asyncio.wait_for(download, TIMEOUT)
            assert response.status == 200 and len(response.content) == 3_000_000
            again = await asyncio.wait_for(client.get("/small.txt"), TIMEOUT)  # still talking, on the new ID
            assert again.status == 200
            assert len(set(used)) == 4 and quic.stats.frames_sent.get("retire_connection_id", 0) >= 3
            for _ in range(50):  # the last RETIRE_CONNECTION_ID's acknowledgment may still be on its way
                if not quic._peer_cids.retire_unacked:
                    break
                await asyncio.wait_for(client.protocol.ping(), TIMEOUT)
            assert not quic._peer_cids.retire_unacked  # every retirement acknowledged
    finally:
        server.stop()


class RotatingSite:
    """Serves big.bin in pieces; a quarter in, asks the client to move off
    every connection ID issued so far, and waits until it has."""

    def __init__(self, site: dict) -> None:
        self.body = (site["root"] / "big.bin").read_bytes()
        self.seen: list[tuple] = []  # (old IDs retired by the client?, rotation bound)

    async def __call__(self, request) -> None:
        quic = request.connection.quic
        await request.send_response(200)
        step = 64 << 10
        rotated = None
        for offset in range(0, len(self.body), step):
            await request.send_data(self.body[offset : offset + step])
            if rotated is None and offset >= len(self.body) // 4:
                quic.request_connection_id_rotation()
                request.connection.transmit()
                rotated = quic._local_cids.retire_prior_to
                for _ in range(500):  # what was sent keeps flowing as we wait
                    if min(quic._local_cids.by_sequence) >= rotated:
                        break
                    await asyncio.sleep(0.01)
                self.seen.append((min(quic._local_cids.by_sequence) >= rotated, rotated))
        await request.send_data(b"", end_stream=True)


@pytest.mark.parametrize("impl", ["aioquic", "qh3", "ngtcp2"])
async def test_their_client_rotates_when_our_server_asks(files, site, impl, tmp_path):
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    config.load_cert_chain(files["server_chain"], files["server_key"])
    app = RotatingSite(site)
    server = await serve_h3("127.0.0.1", 0, configuration=config, handler=app)
    try:
        port = server.local_address[1]
        (result,) = await asyncio.to_thread(run_h3_client, impl, f"https://localhost:{port}/big.bin",
                                            tmp_path / "dl", files, timeout=TIMEOUT)
        assert result["ok"] and result["sha256"] == site["sha256"]["big.bin"], result
        assert app.seen and app.seen[0][0], f"{impl} did not retire every old ID: {app.seen}"
    finally:
        server.close()
        await server.wait_closed()
