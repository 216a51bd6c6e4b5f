# A server's preferred address (RFC 9000 §9.6): the server offers a second
# address and a connection ID for it (sequence number 1, §5.1.1); once the
# handshake is confirmed the client validates that address from its path in
# use, with that ID, and moves there when it is proven; the server answers
# each PATH_CHALLENGE on the path it came from (§8.2.2), from the socket it
# came to, and sends from its preferred address once the client's
# non-probing packets arrive there.  In memory on a small simulated network
# with two server addresses, then over real sockets: our client and our
# server, ngtcp2's client (which follows preferred addresses) against our
# server, and our client against ngtcp2's gtlsserver --preferred-ipv4-addr.
from __future__ import annotations

import asyncio
import hashlib
import heapq

import pytest

from pyquic import events
from pyquic.connection import QuicConnection
from pyquic.errors import UsageError
from pyquic.frames import NewConnectionId
from pyquic import preferred_address
from pyquic.transport_params import PreferredAddress
from tests.quic_pair import CLIENT_ADDR, SERVER_ADDR, client_configuration, seeded_entropy, server_configuration

PREFERRED = ("10.0.0.9", 8443)  # the server's second address
PREFERRED_LOCAL = "preferred socket"  # what the server's second socket tells the core
BODY = bytes(range(256)) * 400  # 100 kB


class TwoAddressNet:
    """A client and a server on two addresses, with a one-way delay; the
    server's datagrams carry the local address they leave from, and the
    client sees them come from that address."""

    def __init__(self, *, server_kw=None, client_kw=None, delay: float = 0.01, reachable=(SERVER_ADDR, PREFERRED)):
        self.now = 0.0
        self.delay = delay
        self.reachable = set(reachable)  # server addresses the client's datagrams get to
        self.client = QuicConnection(configuration=client_configuration(**(client_kw or {})), entropy=seeded_entropy(1))
        self.server_config = server_configuration(preferred_address=[PREFERRED], **(server_kw or {}))
        self.server = None
        self.queue: list = []
        self.seq = 0
        self.sent_to = {SERVER_ADDR: 0, PREFERRED: 0}  # client datagrams per server address
        self.sent_from = {None: 0, PREFERRED_LOCAL: 0}  # server datagrams per local address
        self.client_events: list = []
        self.server_events: list = []
        self.client.connect(SERVER_ADDR, now=self.now)

    def _push(self, dst, data, src, local=None):
        self.seq += 1
        heapq.heappush(self.queue, (self.now + self.delay, self.seq, dst, data, src, local))

    def flush(self):
        for data, addr in self.client.datagrams_to_send(now=self.now):
            self.sent_to[addr] += 1
            if addr in self.reachable:
                self._push("server", data, CLIENT_ADDR, None if addr == SERVER_ADDR else PREFERRED_LOCAL)
        if self.server is not None:
            for buffer, segment, addr, local in self.server.path_datagram_batches(now=self.now):
                assert addr == CLIENT_ADDR
                for i in range(0, len(buffer), segment):
                    self.sent_from[local] += 1
                    self._push("client", buffer[i : i + segment], SERVER_ADDR if local is None else PREFERRED)
        for conn, sink in ((self.client, self.client_events), (self.server, self.server_events)):
            while conn is not None and (event := conn.next_event()) is not None:
                sink.append(event)

    def step(self) -> bool:
        self.flush()
        timers = [t for t in (self.client.get_timer(), self.server and self.server.get_timer()) if t]
        next_at = min([self.queue[0][0]] if self.queue else [] + timers, default=None)
        if self.queue and (not timers or self.queue[0][0] <= min(timers)):
            at, _, dst, data, src, local = heapq.heappop(self.queue)
            self.now = max(self.now, at)
            if dst == "server":
                if self.server is None:
                    odcid = data[6 : 6 + data[5]]
                    self.server = QuicConnection(configuration=self.server_config,
                                                 original_destination_connection_id=odcid, entropy=seeded_entropy(2))
                self.server.receive_datagram(data, src, now=self.now, local=local)
            else:
                self.client.receive_datagram(data, src, now=self.now)
            return True
        if not timers:
            return False
        self.now = max(self.now, min(timers))
        for conn in (self.client, self.server):
            if conn is not None and conn.get_timer() is not None and conn.get_timer() <= self.now:
                conn.handle_timer(self.now)
        return next_at is not None

    def run_until(self, predicate, duration: float = 30.0) -> bool:
        end = self.now + duration
        while self.now < end:
            if predicate():
                self.flush()
                return True
            if not self.step():
                break
        return predicate()


def test_the_client_validates_the_preferred_address_and_moves_there_with_its_connection_id():
    net = TwoAddressNet()
    client = net.client
    assert net.run_until(lambda: client.handshake_confirmed)
    offered = client._peer_params.preferred_address
    assert offered.ipv4_address == PREFERRED and offered.ipv6_address is None
    assert net.run_until(lambda: client.peer_address == PREFERRED, duration=5)
    assert client.peer_cid == offered.connection_id  # §9.6.1, §5.1.1: the ID that came with it
    assert [e.addr for e in net.client_events if isinstance(e, events.PathValidated)] == [PREFERRED]
    assert client.stats.path_migrations == 1 and client.stats.frames_sent.get("retire_connection_id", 0) >= 1
    # Data flows over the new path; the server follows and sends from the preferred socket.
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, BODY, end_stream=True)
    got = bytearray()

    def done():
        got.extend(b"".join(e.data for e in net.server_events if isinstance(e, events.StreamDataReceived)))
        net.server_events.clear()
        return len(got) == len(BODY)

    assert net.run_until(done, duration=20)
    assert bytes(got) == BODY
    server = net.server
    assert server._path.local == PREFERRED_LOCAL and server.stats.path_migrations == 1
    before = dict(net.sent_from)
    server.send_ping(1)
    net.run_until(lambda: False, duration=1)
    assert net.sent_from[PREFERRED_LOCAL] > before[PREFERRED_LOCAL] and net.sent_from[None] == before[None]
    # The server answered the probe with a challenge of its own (§9.6.2: the
    # new path proven both ways), which the client answered.
    assert server.stats.frames_sent.get("path_response", 0) >= 1
    assert server.stats.frames_sent.get("path_challenge", 0) >= 1 and server.stats.paths_validated >= 1


def test_the_server_answers_a_probe_on_the_path_it_came_from():
    net = TwoAddressNet()
    assert net.run_until(lambda: net.client.handshake_confirmed)
    sent = []
    original = net.server.path_datagram_batches

    def spy(now):
        batches = original(now)
        sent.extend(batches)
        return batches

    net.server.path_datagram_batches = spy
    assert net.run_until(lambda: net.client.peer_address == PREFERRED, duration=5)
    responses = [b for b in sent if b[3] == PREFERRED_LOCAL]
    assert responses and len(responses[0][0]) >= 1200  # from the preferred socket, expanded (§8.2.1)
    # Until the client moved, everything else left from the original address.
    assert all(b[3] is None for b in sent[: sent.index(responses[0])])


def test_an_unreachable_preferred_address_leaves_the_connection_where_it_was():
    net = TwoAddressNet(reachable=(SERVER_ADDR,))
    client = net.client
    assert net.run_until(lambda: client.handshake_confirmed)
    assert net.run_until(lambda: any(isinstance(e, events.PathValidationFailed) for e in net.client_events), 10)
    failed = [e for e in net.client_events if isinstance(e, events.PathValidationFailed)]
    assert failed[0].addr == PREFERRED and client.peer_address == SERVER_ADDR
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"still here", end_stream=True)
    assert net.run_until(lambda: any(isinstance(e, events.StreamDataReceived) for e in net.server_events))
    assert client.stats.path_validation_failures == 1 and net.sent_to[PREFERRED] >= 3  # a challenge each PTO


def test_a_client_told_not_to_follow_stays():
    net = TwoAddressNet(client_kw={"follow_preferred_address": False})
    assert net.run_until(lambda: net.client.handshake_confirmed)
    net.run_until(lambda: False, duration=2)
    assert net.client.peer_address == SERVER_ADDR and net.sent_to[PREFERRED] == 0


def test_choosing_an_address_of_the_family_in_use_written_like_the_socket_writes_it():
    offer = PreferredAddress(("192.0.2.1", 4433), ("2001:db8::1", 4434), b"\x01" * 8, b"\x02" * 16)
    assert preferred_address.choose(offer, ("198.51.100.7", 443)) == ("192.0.2.1", 4433)
    assert preferred_address.choose(offer, ("::ffff:198.51.100.7", 443, 0, 0)) == ("::ffff:192.0.2.1", 4433, 0, 0)
    assert preferred_address.choose(offer, ("2001:db8::7", 443, 0, 0)) == ("2001:db8::1", 4434, 0, 0)
    assert preferred_address.choose(PreferredAddress(None, ("2001:db8::1", 4434), b"\x01", b"\x02" * 16),
                                    ("198.51.100.7", 443)) is None
    assert preferred_address.choose(offer, ("localhost", 443)) is None
    assert preferred_address.cid_frame(offer) == NewConnectionId(1, 0, b"\x01" * 8, b"\x02" * 16)


def test_the_configuration_is_checked():
    for bad in ([("example.com", 443)], [("192.0.2.1", 0)], [("192.0.2.1", 1), ("192.0.2.2", 2)]):
        with pytest.raises(UsageError):
            preferred_address.check_addresses(bad)
    assert preferred_address.check_addresses([("192.0.2.1", 1), ("::1", 2)]) == (("192.0.2.1", 1), ("::1", 2))
    with pytest.raises(UsageError, match="connection_id_length"):  # a server needs IDs
        QuicConnection(configuration=server_configuration(preferred_address=[PREFERRED], connection_id_length=0),
                       original_destination_connection_id=b"\x01" * 8, entropy=seeded_entropy(3))


# -- over real sockets ------------------------------------------------------------------------------

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from tests.quic_peers import pki_files

    return pki_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from tests.h3_peers import write_h3_site

    return write_h3_site(tmp_path_factory.mktemp("www"), 2_000_000)


def h3_client_config(files, **kwargs):
    from pyquic.config import QuicConfiguration

    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost", **kwargs)
    config.load_verify_locations(cafile=str(files["ca"]))
    return config


async def start_our_h3_server(files, site, host: str = "127.0.0.1"):
    """serve_h3 with the command's file handler, on a port and a preferred port
    (host "::": a dual-stack main socket, an IPv4 one for the preferred address)."""
    from pyquic.asyncio.h3 import serve_h3
    from pyquic.config import QuicConfiguration
    from pyquic.tools.server import FileServer
    from tests.h3_peers import free_udp_port

    last = None
    for _ in range(3):  # the free port may be taken between the probe and the bind
        preferred = ("127.0.0.1", free_udp_port())
        config = QuicConfiguration(is_client=False, alpn_protocols=["h3"], preferred_address=[preferred])
        config.load_cert_chain(files["server_chain"], files["server_key"])
        app = FileServer(site["root"], quiet=True)
        try:
            server = await serve_h3(host, 0, configuration=config, handler=app.handle_h3)
        except OSError as exc:
            last = exc
            continue
        return server, preferred
    raise AssertionError(f"no free port for the preferred address: {last}")


async def fetch_twice(port: int, files, site, server=None):
    """Two GETs of big.bin on one connection, the second after the move;
    returns our client's connection (and, given our `server`, its own)."""
    from pyquic.asyncio.h3 import connect_h3

    async with connect_h3("127.0.0.1", port, configuration=h3_client_config(files)) as client:
        client.authority = f"localhost:{port}"
        first = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
        quic = client.protocol._quic
        for _ in range(200):  # validation takes a round trip after confirmation
            if quic.peer_address[1] != port:
                break
            await asyncio.sleep(0.01)
        second = await asyncio.wait_for(client.get("/big.bin"), TIMEOUT)
        for response in (first, second):
            assert response.status == 200 and hashlib.sha256(response.content).hexdigest() == site["sha256"]["big.bin"]
        if server is not None:
            return quic, [p.quic for p in server.connections]
        return quic


@pytest.mark.parametrize("host", ["127.0.0.1", "::"])
async def test_our_client_moves_to_our_servers_preferred_address(files, site, host):
    server, preferred = await start_our_h3_server(files, site, host)
    try:
        port = server.local_address[1]
        quic, (conn,) = await fetch_twice(port, files, site, server)
        assert quic.peer_address[1] == preferred[1] and quic.stats.path_migrations == 1
        assert quic.stats.paths_validated == 1
        # The client's address reads the same from both sockets: no new path
        # for congestion control, nothing to validate on the server's side.
        assert conn.stats.path_validation_failures == 0 and conn.peer_address[0].endswith("127.0.0.1")
        assert conn._path.local == preferred and conn.stats.path_migrations == 1  # it sends from there
        assert server.preferred_sockets[preferred].stats.datagrams_sent > 0
    finally:
        server.close()
        await server.wait_closed()


async def test_ngtcp2s_client_moves_to_our_servers_preferred_address(files, site, tmp_path):
    from tests.h3_peers import run_h3_client

    server, preferred = await start_our_h3_server(files, site)
    try:
        port = server.local_address[1]
        urls = [f"https://localhost:{port}/big.bin", f"https://localhost:{port}/small.txt"]
        results = await asyncio.to_thread(run_h3_client, "ngtcp2", urls, tmp_path / "dl", files, timeout=TIMEOUT)
        for r in results:
            name = r["url"].rsplit("/", 1)[1]
            assert r["ok"] and r["sha256"] == site["sha256"][name], r
        stats = server.preferred_sockets[preferred].stats
        # gtlsclient validated the preferred address (our PATH_RESPONSE left
        # from that socket) and carried on there: its requests arrived there.
        assert stats.datagrams_received > 2 and stats.datagrams_sent > 2, (stats.datagrams_received,
                                                                           stats.datagrams_sent)
    finally:
        server.close()
        await server.wait_closed()


async def test_our_client_moves_to_ngtcp2s_preferred_address(files, site):
    from tests.h3_peers import free_udp_port, start_h3_server

    preferred = free_udp_port()
    server = start_h3_server("ngtcp2", site["root"], files, extra_args=[f"--preferred-ipv4-addr=127.0.0.1:{preferred}"])
    try:
        quic = await fetch_twice(server.port, files, site)
        assert quic.peer_address == ("127.0.0.1", preferred) and quic.stats.path_migrations == 1
        assert quic.stats.paths_validated == 1 and quic.stats.frames_sent.get("retire_connection_id", 0) >= 1
    finally:
        server.stop()
