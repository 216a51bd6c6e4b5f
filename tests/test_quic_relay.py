# The impairing UDP relay (tests/udp_relay.py) on its own, with plain UDP
# sockets: loss, duplication, reordering, delay and the blackhole do what
# they say and are reproducible from the seed; then the peer harness through
# it (aioquic client -> relay -> qh3 server), so a failure of the pyquic
# interop tests under impairment can be told apart from a broken relay.
from __future__ import annotations

import asyncio
import socket

import pytest

from tests.quic_peers import assert_all_ok, pki_files, run_client, start_server
from tests.udp_relay import Impairment, UdpRelay

TIMEOUT = 5.0


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.changed = asyncio.Event()

    def datagram_received(self, data, addr) -> None:
        self.got.append(data)
        self.changed.set()


async def echo_server():
    """A UDP server that records what arrives and answers 'ack:<data>'."""
    loop = asyncio.get_running_loop()
    proto = Endpoint()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            proto.datagram_received(data, addr)
            self.transport.sendto(b"ack:" + data, addr)

    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    return transport, proto


async def run_through(relay_kwargs: dict, count: int, settle: float = 0.3, gap: float = 0.0):
    server_transport, server = await echo_server()
    relay = UdpRelay(server_transport.get_extra_info("sockname"), **relay_kwargs)
    addr = await relay.start()
    loop = asyncio.get_running_loop()
    client = Endpoint()
    client_transport, _ = await loop.create_datagram_endpoint(lambda: client, local_addr=("127.0.0.1", 0))
    try:
        for i in range(count):
            client_transport.sendto(i.to_bytes(4, "big"), addr)
            if gap:
                await asyncio.sleep(gap)
            elif i % 50 == 49:
                await asyncio.sleep(0.005)  # let the relay keep up (no socket overflow)
        await asyncio.sleep(settle)
        return server.got, client.got, relay.stats
    finally:
        client_transport.close()
        relay.close()
        server_transport.close()


async def test_clean_relay_forwards_everything_in_order():
    to_server, to_client, stats = await run_through({}, 300)
    assert to_server == [i.to_bytes(4, "big") for i in range(300)]
    assert to_client == [b"ack:" + i.to_bytes(4, "big") for i in range(300)]
    assert stats["to_server"].forwarded == 300


async def test_loss_is_about_the_configured_rate_and_seeded():
    kwargs = dict(to_server=Impairment(loss=0.2), seed=7)
    a, _, stats = await run_through(kwargs, 1000)
    b, _, _ = await run_through(kwargs, 1000)
    assert a == b  # same seed, same drops
    assert 120 <= stats["to_server"].dropped_loss <= 280
    assert len(a) == 1000 - stats["to_server"].dropped_loss


async def test_duplication_and_reordering():
    kwargs = dict(to_server=Impairment(duplicate=0.1, reorder=0.1, reorder_gap=3), seed=3)
    got, _, stats = await run_through(kwargs, 500)
    st = stats["to_server"]
    assert st.duplicated > 20 and st.reordered > 20
    assert len(got) == 500 + st.duplicated
    values = [int.from_bytes(d, "big") for d in got]
    assert set(values) == set(range(500))
    assert values != sorted(values)
    # A held packet comes out after (about) its 3 successors, not much later:
    # count the distinct later packets that overtook each one.
    seen: set[int] = set()
    overtaken_by = {}
    for v in values:
        if v not in seen:
            overtaken_by[v] = sum(1 for w in seen if w > v)
            seen.add(v)
    assert max(overtaken_by.values()) <= 10
    assert sum(1 for n in overtaken_by.values() if n) >= st.reordered // 2


async def test_delay():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    got, back, _ = await run_through(dict(to_server=Impairment(delay=0.1)), 1, settle=0.05)
    assert got == []  # not yet: 100 ms delay
    assert loop.time() - t0 < 0.1 + 0.5


async def test_blackhole_at_a_set_time_drops_a_window():
    kwargs = dict(to_server=Impairment(blackhole_at=0.1, blackhole_for=0.2))
    got, _, stats = await run_through(kwargs, 40, gap=0.01, settle=0.05)
    values = [int.from_bytes(d, "big") for d in got]
    st = stats["to_server"]
    assert 10 <= st.dropped_blackhole <= 25
    # What is missing is one contiguous run (the window).
    missing = sorted(set(range(40)) - set(values))
    assert missing == list(range(missing[0], missing[0] + len(missing)))
    assert 5 <= missing[0] <= 15


async def test_peers_complete_a_transfer_through_loss_reordering_and_a_blackhole(tmp_path):
    files = pki_files(tmp_path)
    server = start_server("qh3", files)
    imp = Impairment(loss=0.05, reorder=0.05, duplicate=0.02)
    relay = UdpRelay(("127.0.0.1", server.port), to_server=imp, to_client=imp, seed=11)
    try:
        host, port = await relay.start()
        loop = asyncio.get_running_loop()
        ops = [{"op": "source", "size": 2_000_000}, {"op": "sink", "size": 1_000_000}]
        job = loop.run_in_executor(None, lambda: run_client("aioquic", port, files, ops, timeout=60))
        # Blackhole both directions for 1 s once the download is under way.
        async def under_way():
            while relay.stats["to_client"].received < 300:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(under_way(), 30)
        relay.blackhole(1.0)
        results = await asyncio.wait_for(job, 90)
        assert_all_ok(results, server)
        st = relay.stats
        assert st["to_client"].dropped_loss > 0 and st["to_client"].dropped_blackhole > 0
    finally:
        relay.close()
        server.stop()
