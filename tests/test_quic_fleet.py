# A fleet behind a QUIC-LB load balancer (pyquic/fleet.py, quic_lb.py,
# examples/quic_lb/balancer.py): two of our HTTP/3 servers share one
# secrets file, each writes its own server ID into every connection ID it
# issues, and a balancer that keeps no per-connection state routes by those
# IDs.  Clients: ours (with rotation and active migration), ngtcp2's (with
# --change-local-addr), aioquic's and qh3's.  Zero datagrams may reach a
# server that does not hold their connection: no stateless reset, no drop,
# no connection made of a stray packet.  With the shared keys a NEW_TOKEN
# token one server minted skips the other's Retry, and a server restarted
# in place (same ID, same secrets) resets the connections its predecessor
# held, so their clients learn at once instead of timing out.
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from examples.quic_lb.balancer import destination_cid, start_balancer
from pyquic.asyncio.h3 import connect_h3, serve_h3
from pyquic.config import QuicConfiguration
from pyquic.errors import UsageError
from pyquic.fleet import FleetSecrets
from pyquic.quic_lb import decode_server_id
from tests.h3_peers import free_udp_port, run_h3_client, write_h3_site
from tests.quic_peers import pki_files
from tests.test_h3_interop import OurSite

TIMEOUT = 30.0
IDS = (b"\x00\x01", b"\x00\x02")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_h3_site(tmp_path_factory.mktemp("www"), 500_000)


@pytest.fixture(scope="module")
def secrets():
    return FleetSecrets.generate(time.time(), os.urandom)


def test_the_secrets_file_round_trips_and_is_checked(tmp_path, secrets):
    path = tmp_path / "fleet.json"
    secrets.save(path)
    assert path.stat().st_mode & 0o077 == 0  # owner only: keys
    again = FleetSecrets.load(path)
    assert again == secrets and again.quic_lb.key == secrets.quic_lb.key
    for broken in ('{"token_key": "00"}', '{"stateless_reset_key": "zz", "token_key": "00"}', "not json"):
        with pytest.raises(UsageError):
            FleetSecrets.from_json(broken)
    config = QuicConfiguration(is_client=False)
    with pytest.raises(UsageError, match="server ID"):
        secrets.configure(config, None, time.time(), os.urandom)


class Fleet:
    """Two servers and the balancer, on loopback."""

    def __init__(self, servers, balancer) -> None:
        self.servers = servers  # server ID -> QuicServer
        self.balancer = balancer
        self.port = balancer.front.get_extra_info("sockname")[1]

    def stray(self) -> dict:
        """What the servers saw that was not theirs (must stay zero)."""
        out = {"stateless_reset": 0, "datagrams_dropped": 0}
        for server in self.servers.values():
            for key in out:
                out[key] += server.endpoint.stats.get(key, 0)
        out["unknown_server_id"] = self.balancer.stats["unknown_server_id"]
        return out

    async def close(self) -> None:
        self.balancer.close()
        for server in self.servers.values():
            server.close()
            await server.wait_closed()


async def start_fleet(files, site, secrets, retry="never") -> Fleet:
    servers, addresses = {}, {}
    for sid in IDS:
        config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
        config.load_cert_chain(files["server_chain"], files["server_key"])
        secrets.configure(config, sid, time.time(), os.urandom)
        server = await serve_h3("127.0.0.1", 0, configuration=config, handler=OurSite(site["root"]), retry=retry,
                                **secrets.endpoint_kwargs())
        servers[sid], addresses[sid] = server, ("127.0.0.1", server.local_address[1])
    balancer = await start_balancer(secrets.quic_lb, addresses, "127.0.0.1", 0)
    return Fleet(servers, balancer)


def client_config(files, **kwargs) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost", **kwargs)
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


async def test_our_clients_rotate_and_migrate_and_every_packet_finds_its_server(files, site, secrets):
    fleet = await start_fleet(files, site, secrets)
    try:
        landed = []
        for _ in range(12):
            async with connect_h3("127.0.0.1", fleet.port, configuration=client_config(files)) as client:
                client.authority = f"localhost:{fleet.port}"
                quic = client.protocol._quic
                first = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
                for _ in range(200):  # rotate once the server gave a spare ID
                    if client.protocol.change_connection_id():
                        break
                    await asyncio.sleep(0.005)
                await asyncio.wait_for(client.protocol.change_local_address(), TIMEOUT)  # a new flow at the balancer
                second = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
                assert first.status == second.status == 200 and first.content == second.content
                assert quic.stats.path_migrations == 1 and quic.stats.paths_validated == 1
                landed.append(decode_server_id(secrets.quic_lb, quic.peer_cid))
        assert set(landed) == set(IDS)  # the client-chosen IDs spread them over both
        assert fleet.stray() == {"stateless_reset": 0, "datagrams_dropped": 0, "unknown_server_id": 0}
        assert fleet.balancer.stats["by_server_id"] > 10 * fleet.balancer.stats["by_hash"]
    finally:
        await fleet.close()


MOVES = ["--change-local-addr=10ms", "--delay-stream=200ms"]  # gtlsclient moves before its requests go


@pytest.mark.parametrize("impl,extra", [("ngtcp2", MOVES), ("aioquic", []), ("qh3", [])])
async def test_their_clients_through_the_balancer(files, site, secrets, tmp_path, impl, extra):
    fleet = await start_fleet(files, site, secrets)
    try:
        urls = [f"https://localhost:{fleet.port}/{name}" for name in ("big.bin", "small.txt")]
        for round_ in range(3):
            results = await asyncio.to_thread(run_h3_client, impl, urls, tmp_path / f"dl{round_}", files,
                                              timeout=TIMEOUT, extra_args=extra)
            for r in results:
                assert r["ok"] and r["sha256"] == site["sha256"][r["url"].rsplit("/", 1)[1]], r
        assert fleet.stray() == {"stateless_reset": 0, "datagrams_dropped": 0, "unknown_server_id": 0}
        if extra:  # gtlsclient moved: more client addresses than connections
            assert len(fleet.balancer.flows) > 3
    finally:
        await fleet.close()


async def test_a_token_from_one_server_skips_the_others_retry(files, site, secrets):
    fleet = await start_fleet(files, site, secrets, retry="always")
    try:
        tokens: list = []
        async with connect_h3("127.0.0.1", fleet.port, configuration=client_config(files),
                              token_handler=tokens.append) as client:
            client.authority = f"localhost:{fleet.port}"
            assert (await asyncio.wait_for(client.get("/small.txt"), TIMEOUT)).status == 200
            quic = client.protocol._quic
            issuer = decode_server_id(secrets.quic_lb, quic.peer_cid)
            assert quic.stats.retries_received == 1
            for _ in range(100):
                if tokens:
                    break
                await asyncio.sleep(0.01)
        assert tokens
        for _ in range(30):  # until a connection lands on the other server
            async with connect_h3("127.0.0.1", fleet.port, configuration=client_config(files, token=tokens[0])) as c:
                c.authority = f"localhost:{fleet.port}"
                assert (await asyncio.wait_for(c.get("/small.txt"), TIMEOUT)).status == 200
                quic = c.protocol._quic
                if decode_server_id(secrets.quic_lb, quic.peer_cid) != issuer:
                    assert quic.stats.retries_received == 0  # the other server took the token
                    break
        else:
            pytest.fail("thirty connections all landed on the token's issuer")
        other = fleet.servers[decode_server_id(secrets.quic_lb, quic.peer_cid)]
        assert other.endpoint.stats["new_token_accepted"] >= 1
    finally:
        await fleet.close()


def start_cli_server(secrets_path, files, sid: bytes, port: int, root) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pyquic.server", "-q", "--root", str(root), "--host", "127.0.0.1", "--port", str(port),
         "--cert", str(files["server_chain"]), "--key", str(files["server_key"]), "--retry", "never",
         "--fleet", str(secrets_path), "--server-id", sid.hex()],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_listening(proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if "listening on" in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"pyquic.server did not start: exit {proc.poll()}")


async def test_a_server_restarted_in_place_resets_its_predecessors_connections(files, site, secrets, tmp_path):
    path = tmp_path / "fleet.json"
    secrets.save(path)
    port = free_udp_port()
    server = start_cli_server(path, files, IDS[0], port, site["root"])
    try:
        wait_listening(server)
        balancer = await start_balancer(secrets.quic_lb, {IDS[0]: ("127.0.0.1", port)}, "127.0.0.1", 0)
        front = balancer.front.get_extra_info("sockname")[1]
        async with connect_h3("127.0.0.1", front, configuration=client_config(files, idle_timeout=60)) as client:
            client.authority = f"localhost:{front}"
            assert (await asyncio.wait_for(client.get("/small.txt"), TIMEOUT)).status == 200
            quic = client.protocol._quic
            assert decode_server_id(secrets.quic_lb, quic.peer_cid) == IDS[0]
            server.send_signal(signal.SIGKILL)  # a crash: nothing said to the client
            server.wait(10)
            server = start_cli_server(path, files, IDS[0], port, site["root"])  # same ID, same secrets
            wait_listening(server)
            started = time.monotonic()
            with pytest.raises(Exception):
                await asyncio.wait_for(client.get("/small.txt"), TIMEOUT)
            took = time.monotonic() - started
            assert quic._end.event is not None and quic._end.event.reason_phrase == "stateless reset"
            assert took < 5  # a reset, not the 60 s idle timeout
        balancer.close()
    finally:
        server.kill()
        server.wait(10)


def test_the_balancer_reads_destination_ids_of_both_header_forms():
    long_header = bytes([0xC0]) + b"\x00\x00\x00\x01" + bytes([4]) + b"abcd" + bytes([0]) + bytes(20)
    assert destination_cid(long_header, 9) == b"abcd"
    assert destination_cid(bytes([0x40]) + b"123456789" + bytes(20), 9) == b"123456789"
    assert destination_cid(b"\x40\x01", 9) is None and destination_cid(b"", 9) is None
    assert destination_cid(bytes([0xC0, 0, 0, 0, 1, 30]) + b"x", 9) is None  # claims more than it has
