# Active migration by the client (RFC 9000 §9.2, §9.4, §9.5): its local
# address changes while data flows; it takes a spare connection ID of the
# server's (retiring the old one), starts congestion control and the RTT
# estimate afresh, and validates the path with PATH_CHALLENGE; the server
# follows and validates the client's new address in turn.  Refused before
# the handshake is confirmed, when the server sent disable_active_migration,
# and without a spare connection ID.  In memory on the simulated clock, then
# over real sockets (change_local_address) against our server, aioquic's,
# qh3's, and ngtcp2's gtlsserver.
from __future__ import annotations

import asyncio

import pytest

from pyquic import events
from pyquic.asyncio import connect, serve
from pyquic.asyncio.h3 import connect_h3
from pyquic.config import QuicConfiguration
from pyquic.congestion.base import initial_window
from pyquic.errors import UsageError
from tests.h3_peers import start_h3_server, write_h3_site
from tests.quic_interop_cases import client_config, expect, request, server_config
from tests.quic_pair import CLIENT_ADDR, Pair, client_configuration, server_configuration
from tests.quic_peers import pki_files, start_server

NEW_ADDR = ("10.0.0.7", 40000)  # the client's new local address, as the server sees it
BODY = bytes(range(256)) * 2000  # 512 kB
TIMEOUT = 30.0


def migrating_pair(**server_kw) -> Pair:
    pair = Pair(rtt=0.05, server_config=server_configuration(**server_kw))
    pair.handshake()
    pair.drive()
    return pair


def test_the_client_moves_with_a_new_connection_id_and_both_sides_validate():
    pair = migrating_pair()
    client, server = pair.client, pair.server
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, BODY, end_stream=True)
    assert pair.drive_until(lambda: len(pair.received("server", sid)) > len(BODY) // 4, duration=30)
    old_cid, cwnd = client.peer_cid, client.loss.congestion_window
    assert cwnd > initial_window(client.path_mtu.base)
    pair.client_addr = NEW_ADDR  # the new socket
    client.change_path(pair.now)
    assert client.peer_cid != old_cid  # §9.5: never the old ID on a new path
    assert client.loss.congestion_window == initial_window(client.path_mtu.base)  # §9.4: afresh (§14.3: from 1200)
    assert pair.drive_until(lambda: pair.received("server", sid) == BODY, duration=60)
    pair.drive()
    assert [e.addr for e in pair.client_events if isinstance(e, events.PathValidated)] == [client.peer_address]
    assert client.stats.path_migrations == 1 and client.stats.paths_validated == 1
    assert client.stats.frames_sent.get("retire_connection_id", 0) >= 1
    # The server followed the client to its new address and validated it.
    assert server.peer_address == NEW_ADDR and server.stats.paths_validated == 1
    assert server.stats.frames_sent.get("path_response", 0) >= 1  # it answered our challenge


def test_active_migration_is_refused_when_it_must_not_happen():
    pair = Pair(rtt=0.05)
    pair.connect()
    with pytest.raises(UsageError, match="confirmed"):
        pair.client.change_path(pair.now)  # the handshake is not confirmed
    refusing = migrating_pair(disable_active_migration=True)
    with pytest.raises(UsageError, match="disable_active_migration"):
        refusing.client.change_path(refusing.now)
    server = migrating_pair()
    server_conn = server.server
    with pytest.raises(UsageError, match="client"):
        server_conn.change_path(server.now)


def test_without_a_spare_connection_id_there_is_no_migration():
    pair = Pair(rtt=0.05, client_config=client_configuration(active_connection_id_limit=2))
    pair.handshake()
    pair.drive()
    pair.client.change_path(pair.now)  # the one spare
    with pytest.raises(UsageError, match="spare connection ID"):
        pair.client.change_path(pair.now)  # the server has not replaced it yet


# -- over real sockets ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


async def migrate_during_echo(files, port: int) -> tuple:
    """A 1 MB echo; a quarter in, the client moves to a new local socket."""
    async with connect("127.0.0.1", port, configuration=client_config(files)) as proto:
        before = proto._sender.getsockname()
        reader, writer = await proto.create_stream()
        writer.write(b"echo\n")
        from tests.peers.pattern import chunks

        async def send():
            sent = 0
            moved = None
            for chunk in chunks(1 << 20):
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                if moved is None and sent >= 1 << 18:
                    moved = await asyncio.wait_for(proto.change_local_address(), TIMEOUT)
            writer.write_eof()
            return moved

        from tests.quic_interop_cases import read_digest

        moved, answer = await asyncio.gather(send(), read_digest(reader))
        return before, moved, answer, proto._quic


@pytest.mark.parametrize("impl", ["pyquic", "aioquic", "qh3"])
async def test_change_local_address_mid_transfer(files, impl):
    ours = None
    if impl == "pyquic":
        from tests.quic_interop_cases import PyquicTestServer

        ours = PyquicTestServer()
        port = await ours.start(server_config(files))
        stop = ours.stop
    else:
        peer = start_server(impl, files)
        port, stop = peer.port, peer.stop
    try:
        before, after, answer, quic = await migrate_during_echo(files, port)
        assert answer == expect(1 << 20)
        assert after[1] != before[1]  # a new local port
        assert quic.stats.path_migrations == 1 and quic.stats.paths_validated == 1
        if ours is not None:
            server_conn = ours.protocols[0]._quic
            assert server_conn.peer_address[1] == after[1] and server_conn.stats.paths_validated == 1
    finally:
        result = stop()
        if asyncio.iscoroutine(result):
            await result


async def test_change_local_address_against_ngtcp2(files, tmp_path):
    site = write_h3_site(tmp_path / "www", 2 << 20)
    server = start_h3_server("ngtcp2", site["root"], files)
    try:
        config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
        config.load_verify_locations(cafile=str(files["ca"]))
        async with connect_h3("127.0.0.1", server.port, configuration=config) as client:
            client.authority = f"localhost:{server.port}"
            first = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
            moved = await asyncio.wait_for(client.protocol.change_local_address(), TIMEOUT)
            second = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
            assert first.status == second.status == 200 and first.content == second.content
            assert client.protocol._quic.stats.paths_validated == 1 and moved[1] > 0
    finally:
        server.stop()
